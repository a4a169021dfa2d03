"""The metric docs cannot drift: the tutorial's code is the example package, file for file,
its tests pass, and every TOML example in docs/metrics.md is a valid policy fragment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from aqcore.gates.builtin import BUILTIN_METRICS
from aqcore.policy import build_policy

ROOT = Path(__file__).parents[2]
TUTORIAL = ROOT / "docs" / "writing-a-gate-metric.md"
REFERENCE = ROOT / "docs" / "metrics.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```\w+\n(?P<body>.*?)```", re.S)


def test_tutorial_code_is_the_example_package() -> None:
    blocks = list(FILE_BLOCK.finditer(TUTORIAL.read_text()))
    assert len(blocks) == 3
    for block in blocks:
        assert (ROOT / block["path"]).read_text() == block["body"], block["path"]


def test_example_package_tests_pass() -> None:
    example = ROOT / "examples" / "aq-metric-example"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example), str(ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example / "tests")],
        capture_output=True,
        text=True,
        env=env,
        cwd=example,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "snippet", re.findall(r"```toml\n(.*?)```", REFERENCE.read_text(), re.S), ids=lambda s: s.split("\n")[0]
)
def test_reference_examples_validate(snippet: str) -> None:
    doc = tomllib.loads(snippet)
    build_policy({"name": "docs", **doc}, {m.name: m for m in BUILTIN_METRICS})


def test_reference_lists_every_setting() -> None:
    text = REFERENCE.read_text()
    for metric in BUILTIN_METRICS:
        assert f"## {metric.name}" in text
        for field in metric.Settings.model_fields:
            assert f"`{field}`" in text, (metric.name, field)
