"""Fixtures for the Redis store tests: a real redis-server for the session (the contract,
concurrency and fault tests never run against a mock). The shared store contract and runtime
helpers live in the repository's tests/store_contract.py and tests/store_runtime.py.

Without a redis-server binary these tests skip, unless AQ_REQUIRE_REDIS=1 (CI) makes that an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

_HERE = Path(__file__).resolve().parent
_REPO_TESTS = _HERE.parents[2] / "tests"
for path in (_HERE, _REPO_TESTS):
    if path.is_dir() and str(path) not in sys.path:
        sys.path.insert(0, str(path))

from redis_server import RedisServer, find_redis_server  # noqa: E402

# the runtime tests' helpers and fixtures, shared with the other store packages (with pytest's
# assertion messages in its checks, as in a test module)
pytest.register_assert_rewrite("store_runtime")
from store_runtime import aq, isolated, keys  # noqa: E402, F401


def _need_redis() -> None:
    if find_redis_server() is None:
        if os.environ.get("AQ_REQUIRE_REDIS") == "1":
            pytest.fail("AQ_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One fast (no persistence) redis-server for the session."""
    _need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, durable (AOF, appendfsync always), for fault tests."""
    _need_redis()
    server = RedisServer(tmp_path / "redis", durable=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store_url(redis_server: RedisServer) -> str:
    """The session server, emptied before each test."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    client.close()
    return f"{redis_server.url}?connect_timeout=0.5&timeout=2"
