"""Runtime start stays light: importing aqcore, discovering plugins and loading a policy do not
import numpy (a token adapter's first generation does), so a worker that serves a closed-API
adapter, or only checks policies, never pays for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "support-agent.toml"

CODE = """
import sys
from aqcore import Runtime


class Chunks:
    # a closed-API stand-in that uses no numpy (the bundled test-units adapter runs an n-gram LM)
    granularity, name, model_name, model_digest = "unit", "chunks", "chunks", ""

    def stream(self, request):
        yield from ["Your order ", "ships today. ", "Thank you."]

    def close(self):
        pass


runtime = Runtime(adapter=Chunks(), policy={policy!r}, store="memory:", journal={journal!r})
print("after start:", "numpy" in sys.modules)
result = runtime.generate("Where is my order?", agent="a", conversation="c", max_tokens=8)
assert result.text == "Your order ships today. Thank you.", result.text
print("after a unit generation:", "numpy" in sys.modules)
token = Runtime(adapter="test", policy={policy!r}, store="memory:", journal={journal!r})
token.generate("Where is my order?", agent="a", conversation="c", max_tokens=8)
print("after a token generation:", "numpy" in sys.modules)
"""


def test_numpy_is_imported_only_when_a_token_adapter_generates(tmp_path):
    code = CODE.format(policy=str(POLICY), journal=str(tmp_path / "journal"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "after start: False",
        "after a unit generation: False",
        "after a token generation: True",
    ]
