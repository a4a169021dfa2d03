"""docs/lineage.md's verifier script, extracted from the page, verifies a real export and
rejects a tampered one: the documented format is the format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import make_chain

from aqcore.lineage import JsonlLineageStore, export_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "lineage.md"


def verifier_script() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- lineage-verifier -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/lineage.md lost its verifier script"
    return match.group(1)


def run_script(script: Path, *args: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_documented_verifier_accepts_a_real_export_and_rejects_tampering(tmp_path, signer, keyring) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "verify.py"
    script.write_text(verifier_script())
    store = JsonlLineageStore(str(tmp_path / "l.jsonl"))
    for conv in ("c1", "c2"):
        for r in make_chain(signer, 3, conv):
            store.append(r.chain, r.seq, r.prev, r.digest, r.envelope)
    out = tmp_path / "export.jsonl"
    export_store(store, out, keyring)
    ok = run_script(script, out)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok: 6 receipts in 2 chains" in ok.stdout
    ok2 = run_script(script, out, tmp_path / "keys" / "keyring.json")
    assert ok2.returncode == 0, ok2.stdout + ok2.stderr

    lines = out.read_bytes().splitlines(keepends=True)
    cases = {
        "flipped": [*lines[:3], lines[3].replace(b'"sig":"', b'"sig":"A', 1)[:-6] + lines[3][-5:],
                    *lines[4:]],
        "dropped": lines[:2] + lines[3:],
        "reordered": [*lines[:2], lines[3], lines[2], *lines[4:]],
        "duplicated": [*lines[:3], lines[2], *lines[3:]],
        "truncated": lines[:-1],
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_bytes(b"".join(content))
        result = run_script(script, bad)
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        assert "FAILED" in result.stdout or "does not end" in result.stdout
