"""Fixtures for the LMDB store tests. The shared store contract lives in the repository's
tests/store_contract.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if _REPO_TESTS.is_dir() and str(_REPO_TESTS) not in sys.path:
    sys.path.insert(0, str(_REPO_TESTS))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh environment; sync=false because fsync-per-commit only slows the tests down."""
    return f"lmdb://{tmp_path / 'store'}?sync=false"
