"""A real redis-server killed, frozen and restarted under the stores: every call fails fast with
StateUnavailable (state) or LineageError (lineage), never hangs, and works again once the server
is back, with what was acknowledged before the kill still there (AOF, appendfsync always)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from aq_state_redis.plugin import open_lineage_store, open_state_backend
from redis_server import RedisServer

from aqcore.errors import LineageError, StateUnavailable
from aqcore.lineage.store import ChainHead
from aqcore.state.backend import Versioned

KEY = "conversation/acme:bot:c1"
CHAIN = "acme:bot:c1"
OPTIONS = "?connect_timeout=0.2&timeout=0.5&retries=1"
# Worst case of one call is (retries + 1) * (connect_timeout + timeout) = 1.4 s. The bound below
# only tells a hang from an answer; it is not a latency claim.
HANG = 15.0


def bounded(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn``; return what it raised (None if nothing); fail if it does not return."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG)
    if thread.is_alive():
        pytest.fail(f"{fn} did not return within {HANG}s: the store hangs on a dead server")
    return outcome[0]


def calls(state: Any, lineage: Any) -> dict[str, Callable[[], Any]]:
    envelope = b'{"seq":2}'
    return {
        "load": lambda: state.load(KEY),
        "compare_and_set": lambda: state.compare_and_set(KEY, 1, {"n": 2}),
        "delete": lambda: state.delete("agent/acme:bot"),
        "keys": lambda: list(state.keys("conversation/acme:")),
        "head": lambda: lineage.head(CHAIN),
        "append": lambda: lineage.append(
            CHAIN, 2, hashlib.sha256(b"first").hexdigest(), hashlib.sha256(envelope).hexdigest(), envelope
        ),
        "records": lambda: list(lineage.records(CHAIN)),
        "chains": lambda: list(lineage.chains("acme:")),
    }


@pytest.fixture
def stores(fresh_server: RedisServer) -> Any:
    state = open_state_backend(fresh_server.url + OPTIONS)
    lineage = open_lineage_store(fresh_server.url + OPTIONS)
    assert state.compare_and_set(KEY, 0, {"n": 1})
    lineage.append(CHAIN, 1, "", hashlib.sha256(b"first").hexdigest(), b"first")
    yield state, lineage
    state.close()
    lineage.close()


def test_killed_server_fails_fast_and_recovers_with_acknowledged_writes(
    fresh_server: RedisServer, stores: Any
) -> None:
    state, lineage = stores
    fresh_server.kill()
    for name, call in calls(state, lineage).items():
        raised = bounded(call)
        expected = LineageError if name in ("head", "append", "records", "chains") else StateUnavailable
        assert isinstance(raised, expected), (name, raised)
        assert f"127.0.0.1:{fresh_server.port}" in str(raised)
    fresh_server.start()  # same port and directory: the AOF is replayed
    assert state.load(KEY) == Versioned(1, {"n": 1})
    assert lineage.head(CHAIN) == ChainHead(1, hashlib.sha256(b"first").hexdigest())
    for name, call in calls(state, lineage).items():
        assert bounded(call) is None, name
    assert state.load(KEY) == Versioned(2, {"n": 2})
    assert list(lineage.records(CHAIN)) == [b"first", b'{"seq":2}']


def test_frozen_server_times_out_then_answers(fresh_server: RedisServer, stores: Any) -> None:
    state, lineage = stores
    fresh_server.pause()  # connections are accepted by the kernel, nothing replies
    try:
        for name in ("load", "compare_and_set", "keys", "head", "append"):
            raised = bounded(calls(state, lineage)[name])
            assert isinstance(raised, StateUnavailable | LineageError), (name, raised)
            assert "timed out" in str(raised), raised
    finally:
        fresh_server.resume()
    assert state.load(KEY) == Versioned(1, {"n": 1})
    assert state.compare_and_set(KEY, 1, {"n": 2})


def test_run_of_increments_survives_a_restart_without_loss(fresh_server: RedisServer) -> None:
    """The pattern the runtime's degraded mode follows: while the store is down, updates are kept
    locally; once it answers again they are merged by load + compare-and-set. Nothing is lost."""
    state = open_state_backend(fresh_server.url + OPTIONS)
    pending = 0  # increments that could not be committed yet (the local journal)
    failures = 0
    try:
        for i in range(120):
            if i == 40:
                fresh_server.kill()
            if i == 80:
                fresh_server.start()
            pending += 1
            try:
                while pending:
                    held = state.load(KEY)
                    version, count = (held.version, held.doc["n"]) if held else (0, 0)
                    if state.compare_and_set(KEY, version, {"n": count + pending}):
                        pending = 0
            except StateUnavailable:
                failures += 1
        assert failures == 40  # every call while the server was down failed, none hung or lied
        held = state.load(KEY)
        assert held is not None and held.doc["n"] == 120
    finally:
        state.close()


def test_listing_uses_scan_never_keys(fresh_server: RedisServer, stores: Any) -> None:
    state, lineage = stores
    assert list(state.keys("conversation/")) == [KEY]
    assert list(lineage.chains()) == [CHAIN]
    stats = redis.Redis(host="127.0.0.1", port=fresh_server.port).info("commandstats")
    assert "cmdstat_scan" in stats
    assert "cmdstat_keys" not in stats
