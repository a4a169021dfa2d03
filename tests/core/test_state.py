"""Semantic state: lossless merge, compare-and-set retries, and the degraded-but-governed path
with a backend that fails, hangs or conflicts on demand (invariant 5)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aqcore.errors import StateUnavailable
from aqcore.models import Commitment, Scope
from aqcore.state.backend import Versioned
from aqcore.state.journal import Journal
from aqcore.state.keys import agent_key, conversation_key
from aqcore.state.memory import MemoryBackend
from aqcore.state.session import StateManager
from aqcore.state.update import StateUpdate, merge
from aqcore.testing import ScriptedAdapter

from .metrics_for_tests import Phrase


class FlakyBackend(MemoryBackend):
    """A real in-memory store that can be told to fail, hang or lose every CAS."""

    blocking = True  # it can hang: the runtime must keep its deadline thread

    def __init__(self) -> None:
        super().__init__("flaky:")
        self.mode = "ok"
        self.release = threading.Event()
        self.calls = 0

    def _gate(self) -> None:
        self.calls += 1
        if self.mode == "down":
            raise ConnectionError("connection refused")
        if self.mode == "hang":
            self.release.wait(5)

    def load(self, key: str) -> Versioned | None:
        self._gate()
        return super().load(key)

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        self._gate()
        if self.mode == "conflict":
            return False
        return super().compare_and_set(key, expected_version, doc)


@pytest.fixture
def flaky(pm):
    backend = FlakyBackend()

    class Plugin:
        from aqcore.hookspecs import hookimpl

        @hookimpl
        def aq_register_state_backends(self, register):
            register("flaky", lambda url: backend)

    pm.register(Plugin(), "inline-flaky", distribution="tests", version="0")
    yield backend
    backend.release.set()


SCOPE = Scope(agent="a", conversation="c")


def test_merge_is_a_counter_a_set_and_idempotent():
    key = conversation_key(SCOPE)
    first = StateUpdate(key=key, entropy=1.5, commitments=[Commitment(slot="refund", value="25", invocation="i1")])
    second = StateUpdate(key=key, entropy=2.0, commitments=[Commitment(slot="refund", value="30", invocation="i2")])
    doc, changed = merge(None, first)
    assert changed
    doc, changed = merge(doc, second)
    doc, again = merge(doc, second)  # replaying the same update changes nothing
    assert not again
    assert doc["entropy_spent"] == pytest.approx(3.5)
    assert doc["commitments"]["refund"]["value"] == "25"
    assert [c["value"] for c in doc["conflicts"]] == ["30"]


def test_concurrent_commits_lose_no_update(tmp_path):
    backend = MemoryBackend("memory:concurrent")
    manager = StateManager(backend, Journal(tmp_path, backend.url), timeout_s=None, max_retries=1000)
    key = conversation_key(SCOPE)

    def work(n: int) -> None:
        for i in range(50):
            manager.apply(StateUpdate(key=key, entropy=1.0, commitments=[
                Commitment(slot=f"s{n}-{i}", value="v", invocation="x")]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = backend.load(key)
    assert held is not None
    assert held.version == 200
    assert held.doc["entropy_spent"] == pytest.approx(200.0)
    assert len(held.doc["commitments"]) == 200


def test_backend_down_runs_degraded_flags_everything_and_journals(make_runtime, flaky, tmp_path):
    adapter = ScriptedAdapter.from_pieces(["Hello", " there"])
    runtime = make_runtime(adapter, store="flaky:", journal=str(tmp_path / "j"))
    flaky.mode = "down"
    result = runtime.generate("x", agent="a", conversation="c")
    assert result.state_status == "partial"
    assert result.confidence == "reduced"
    assert "connection refused" in (result.degraded_reason or "")
    assert result.emissions and all(e.state_status == "partial" and e.confidence == "reduced" for e in result.emissions)
    assert not result.state_committed
    journal = runtime.state.journal
    assert sorted(journal.pending_keys()) == sorted([agent_key(result.scope), conversation_key(result.scope)])
    # while the store is away, a second invocation still sees what the first one journalled
    second = runtime.generate("y", agent="a", conversation="c")
    assert second.state_status == "partial"
    state = runtime.state.load(result.scope)
    assert state.status == "partial"
    assert [t.invocation for t in state.conversation.turns] == [result.scope.invocation, second.scope.invocation]
    # the store comes back: the next load replays the journal in order, losing nothing
    flaky.mode = "ok"
    third = runtime.generate("z", agent="a", conversation="c")
    assert third.state_status == "full"
    assert journal.pending_keys() == []
    stored = runtime.state.load(result.scope)
    assert stored.status == "full"
    assert [t.prompt for t in stored.conversation.turns] == ["x", "y", "z"]
    assert stored.conversation.version == 3
    assert stored.conversation.entropy_spent == pytest.approx(
        sum(r.entropy_spent["invocation"] for r in (result, second, third))
    )


def test_a_hanging_backend_times_out_into_degraded_mode(make_runtime, flaky):
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]), store="flaky:", state_timeout_s=0.2)
    flaky.mode = "hang"
    started = time.monotonic()
    result = runtime.generate("x", agent="a", conversation="c")
    assert time.monotonic() - started < 4  # bounded by the deadline, not by the hang
    assert result.state_status == "partial"
    assert "did not answer" in (result.degraded_reason or "")
    flaky.release.set()


def test_conflicts_beyond_retries_journal_the_update(make_runtime, flaky):
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]), store="flaky:")
    flaky.mode = "conflict"
    result = runtime.generate("x", agent="a", conversation="c")
    assert not result.state_committed
    assert result.state_status == "partial"
    assert "compare-and-set" in (result.degraded_reason or "")
    flaky.mode = "ok"
    assert runtime.state.replay() == 2
    assert runtime.state.load(result.scope).conversation.turns[0].invocation == result.scope.invocation


def test_degraded_profile_is_stricter(make_runtime, flaky, register_metrics):
    register_metrics(Phrase)
    policy = {
        "max_tokens": 50,
        "degraded": {"max_tokens": 2, "metrics": {"phrase": {"phrase": "zzz"}}},
        "metrics": {"phrase": {"phrase": "qqq"}},
    }
    runtime = make_runtime(ScriptedAdapter.from_pieces(["a", "b", "c", "d"]), policy, store="flaky:")
    assert runtime.generate("x", agent="a", conversation="c").text == "abcd"
    flaky.mode = "down"
    degraded = runtime.generate("x", agent="a", conversation="c")
    assert degraded.text == "ab"
    assert degraded.finish_reason == "max_tokens"
    assert runtime.policy_for(runtime.state.load(degraded.scope)).metrics["phrase"].phrase == "zzz"


def test_fail_closed_profile_generates_nothing(make_runtime, flaky):
    adapter = ScriptedAdapter.from_pieces(["never"])
    runtime = make_runtime(adapter, {"degraded": {"on_state_unavailable": "fail_closed"}}, store="flaky:")
    flaky.mode = "down"
    result = runtime.generate("x", agent="a", conversation="c")
    assert result.finish_reason == "state_unavailable"
    assert result.text == ""
    assert adapter.accepted == []


def test_replay_stops_at_the_first_failure_and_keeps_the_rest(tmp_path):
    backend = FlakyBackend()
    journal = Journal(tmp_path, backend.url)
    manager = StateManager(backend, journal, timeout_s=None)
    key = conversation_key(SCOPE)
    for i in range(3):
        journal.append(StateUpdate(key=key, entropy=float(i)))
    backend.mode = "down"
    with pytest.raises(StateUnavailable):
        manager.replay()
    assert len(journal.pending(key)) == 3
    backend.mode = "ok"
    assert manager.replay() == 3
    assert journal.pending(key) == []
    assert manager.replay() == 0


def test_tenants_do_not_share_keys():
    a = Scope(tenant="t1", agent="a", conversation="c")
    b = Scope(tenant="t2", agent="a", conversation="c")
    assert conversation_key(a) != conversation_key(b)
    assert agent_key(a).startswith("agent/t1:") and agent_key(b).startswith("agent/t2:")


def test_state_is_shared_between_runtimes_on_one_store(make_runtime, tmp_path):
    store = f"memory:{tmp_path}/shared"
    one = make_runtime(ScriptedAdapter.from_pieces(["first"]), store=store)
    two = make_runtime(ScriptedAdapter.from_pieces(["second"]), store=store)
    one.generate("x", agent="a", conversation="c")
    two.generate("y", agent="a", conversation="c")
    turns = one.load_state("a", "c").conversation.turns
    assert [t.text for t in turns] == ["first", "second"]


def test_a_store_password_never_reaches_messages_results_or_receipts(make_runtime, flaky):
    flaky.url = "flaky://:s3cret@db.internal:6379/0?timeout=1"
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]), store="flaky://:s3cret@db.internal:6379/0")
    flaky.mode = "down"
    result = runtime.generate("x", agent="a", conversation="c")
    assert result.state_status == "partial"
    assert "db.internal" in (result.degraded_reason or "")
    assert "s3cret" not in (result.degraded_reason or "")
    assert "s3cret" not in runtime.store_display


def test_the_journal_belongs_to_the_store_not_to_the_client_options(tmp_path):
    from aqcore.urls import store_identity

    assert store_identity("redis://:pw@h:6379/0?timeout=0.5") == store_identity("redis://h:6379/0")
    assert store_identity("lmdb:///d?sync=false") == store_identity("lmdb:///d")
    assert store_identity("redis://h:6379/0") != store_identity("redis://h:6379/1")
    key = conversation_key(SCOPE)
    Journal(tmp_path, "lmdb:///d?sync=false").append(StateUpdate(key=key, entropy=1.0))
    assert [u.entropy for u in Journal(tmp_path, "lmdb:///d").pending(key)] == [1.0]


def test_the_policy_sets_the_store_deadline_and_retries(make_runtime, flaky):
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]), {"state": {"timeout_s": 0.2, "max_retries": 2}},
                           store="flaky:")
    assert (runtime.state.timeout_s, runtime.state.max_retries) == (0.2, 2)
    flaky.mode = "hang"
    result = runtime.generate("x", agent="a", conversation="c")
    assert "within 0.2s" in (result.degraded_reason or "")
    flaky.release.set()


def test_urls_with_several_hosts_are_masked_and_identified():
    from aqcore.urls import mask_url, store_identity

    url = "redis+cluster://u:pw@h2:7001,h1:7000/?timeout=1"
    assert "pw" not in mask_url(url) and "h2:7001,h1:7000" in mask_url(url)
    assert store_identity(url) == store_identity("redis+cluster://h1:7000,h2:7001/")
    assert store_identity(url) != store_identity("redis+cluster://h1:7000,h3:7002/")


class PlainBackend:
    """A backend written against the protocol alone (no ``blocking`` attribute)."""

    url = "plain:"

    def __init__(self) -> None:
        self.inner = MemoryBackend("plain:")
        self.threads: set[str] = set()

    def load(self, key: str) -> Versioned | None:
        self.threads.add(threading.current_thread().name)
        return self.inner.load(key)

    def compare_and_set(self, key: str, expected_version: int, doc: dict[str, Any]) -> bool:
        self.threads.add(threading.current_thread().name)
        return self.inner.compare_and_set(key, expected_version, doc)

    def delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def keys(self, prefix: str) -> Any:
        return self.inner.keys(prefix)

    def close(self) -> None:
        self.inner.close()


def test_a_backend_that_cannot_hang_runs_on_the_callers_thread_and_others_under_the_deadline(tmp_path):
    class Recording(MemoryBackend):
        def __init__(self) -> None:
            super().__init__("memory:recording")
            self.threads: set[str] = set()

        def load(self, key: str) -> Versioned | None:
            self.threads.add(threading.current_thread().name)
            return super().load(key)

    for backend, on_caller in ((Recording(), True), (PlainBackend(), False)):
        manager = StateManager(backend, Journal(tmp_path / "j", backend.url), timeout_s=1.0)  # type: ignore[arg-type]
        loaded = manager.load(SCOPE)
        assert manager.commit([StateUpdate(key=conversation_key(SCOPE), entropy=1.5)]).committed
        assert manager.load(SCOPE).conversation.entropy_spent == 1.5 and loaded.status == "full"
        caller = threading.current_thread().name
        if on_caller:
            assert backend.threads == {caller} and manager._executor is None
        else:
            assert backend.threads and caller not in backend.threads  # the deadline thread
        manager.close()
