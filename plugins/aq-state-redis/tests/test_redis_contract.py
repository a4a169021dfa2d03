"""The shared state and lineage contract, run against a real redis-server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aq_state_redis.plugin import open_lineage_store, open_state_backend
from store_contract import LineageStoreContract, StateBackendContract


class TestRedisState(StateBackendContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_state_backend


class TestRedisLineage(LineageStoreContract):
    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return open_lineage_store
