"""Fixtures for the LMDB store tests. The shared store contract and runtime helpers live in the
repository's tests/store_contract.py and tests/store_runtime.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if _REPO_TESTS.is_dir() and str(_REPO_TESTS) not in sys.path:
    sys.path.insert(0, str(_REPO_TESTS))

# the runtime tests' helpers and fixtures, shared with the other store packages (with pytest's
# assertion messages in its checks, as in a test module)
pytest.register_assert_rewrite("store_runtime")
from store_runtime import aq, isolated, keys  # noqa: E402, F401


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh environment; sync=false because fsync-per-commit only slows the tests down."""
    return f"lmdb://{tmp_path / 'store'}?sync=false"
