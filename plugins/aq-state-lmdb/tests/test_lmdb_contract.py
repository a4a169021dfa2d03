"""The shared state and lineage contract, run against LMDB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aq_state_lmdb.plugin import open_lineage_store, open_state_backend
from store_contract import LineageStoreContract, StateBackendContract


class TestLmdbState(StateBackendContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_state_backend


class TestLmdbStateDurable(StateBackendContract):
    """The default, durable setting, on the cases that commit across processes."""

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"lmdb://{tmp_path / 'durable'}"

    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_state_backend


class TestLmdbLineage(LineageStoreContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_lineage_store
