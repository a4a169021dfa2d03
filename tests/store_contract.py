"""The contract every state backend and lineage store keeps, as reusable test classes.

A store package subclasses :class:`StateBackendContract` and :class:`LineageStoreContract` in its
own tests and provides two fixtures:

- ``store_url``: a URL naming a fresh, empty store;
- ``opener``: a module-level ``factory(url)`` (importable in a child process) returning the
  backend (for the state contract) or the lineage store (for the lineage contract).

The concurrency cases run the factory in separate processes started with ``spawn``, so each
worker opens the store itself, as separate aq workers do.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aqcore.errors import LineageError, UsageError
from aqcore.lineage.store import ChainHead, LineageStore
from aqcore.state.backend import StateBackend, Versioned

WORKERS = 4
INCREMENTS = 100
APPENDS = 25

BAD_KEYS = [
    "",
    "conversation",
    "conversation/",
    "conversation/acme",
    "conversation/acme:bot",  # a conversation key holds three ids
    "conversation/acme:bot:c1:extra",
    "agent/acme:bot:c1",
    "conversation/acme::c1",
    "conversation/acme:bot:c1/../other:bot:c1",
    "conversation/acme:{other:bot}:c1",
    "conversation/acme:bot:c*",
    "conversation/acme:bot:c1\x00",
    "conversation/acme:bot:c 1",
    "Conversation/acme:bot:c1",
    "conversation/" + "x" * 129 + ":bot:c1",
]
BAD_CHAINS = [
    "",
    "acme",
    "acme:bot",
    "acme:bot:c1:x",
    "acme::c1",
    "acme:bot:{c1}",
    "acme:bot:c*",
    "acme:bot:c\n",
]


def digest_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def conversation(tenant: str, conv: str = "c1", agent: str = "bot") -> str:
    return f"conversation/{tenant}:{agent}:{conv}"


# -- workers (module level so that spawned processes can import them) ---------------------------
def _increment_worker(
    opener: Callable[[str], Any], url: str, key: str, worker: int, start: Any, results: Any
) -> None:
    backend = opener(url)
    conflicts = 0
    start.wait(60)
    try:
        for i in range(INCREMENTS):
            while True:
                held = backend.load(key)
                version = held.version if held else 0
                doc = held.doc if held else {"counter": 0, "seen": []}
                doc = {"counter": doc["counter"] + 1, "seen": [*doc["seen"], f"w{worker}-{i}"]}
                if backend.compare_and_set(key, version, doc):
                    break
                conflicts += 1
        results.put(("ok", worker, conflicts))
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put(("error", worker, f"{type(exc).__name__}: {exc}"))
    finally:
        backend.close()


def _append_worker(
    opener: Callable[[str], Any], url: str, chain: str, worker: int, start: Any, results: Any
) -> None:
    store = opener(url)
    refused = 0
    start.wait(60)
    try:
        for i in range(APPENDS):
            while True:
                head = store.head(chain)
                seq, prev = (head.seq + 1, head.digest) if head else (1, "0" * 64)
                envelope = f'{{"worker":{worker},"i":{i},"seq":{seq}}}'.encode()
                try:
                    store.append(chain, seq, prev, digest_of(envelope), envelope)
                    break
                except LineageError:
                    refused += 1
        results.put(("ok", worker, refused))
    except BaseException as exc:
        results.put(("error", worker, f"{type(exc).__name__}: {exc}"))
    finally:
        store.close()


def run_workers(target: Callable[..., None], *args: Any) -> list[int]:
    """Run ``WORKERS`` spawned processes of ``target(*args, worker, start, results)`` released
    together; return each worker's retry count or fail with the workers' errors."""
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, n, start, results)) for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=300))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {WORKERS} workers finished: {outcomes}")
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    errors = [o for o in outcomes if o[0] != "ok"]
    assert not errors, errors
    return [o[2] for o in outcomes]


class StateBackendContract:
    """Conformance of a :class:`aqcore.state.backend.StateBackend`."""

    @pytest.fixture
    def backend(self, opener: Callable[[str], Any], store_url: str) -> Iterator[Any]:
        backend = opener(store_url)
        yield backend
        backend.close()

    def test_is_a_state_backend(self, backend: Any, store_url: str) -> None:
        assert isinstance(backend, StateBackend)
        assert backend.url == store_url

    def test_absent_key_loads_none(self, backend: Any) -> None:
        assert backend.load(conversation("acme")) is None

    def test_create_with_expected_zero(self, backend: Any) -> None:
        key = conversation("acme")
        assert backend.compare_and_set(key, 0, {"spent": 1.5, "text": "héllo ✓", "nested": {"a": [1, None]}})
        assert backend.load(key) == Versioned(
            1, {"spent": 1.5, "text": "héllo ✓", "nested": {"a": [1, None]}}
        )

    def test_absent_key_with_nonzero_expected_is_refused(self, backend: Any) -> None:
        key = conversation("acme")
        assert backend.compare_and_set(key, 1, {"x": 1}) is False
        assert backend.load(key) is None

    def test_existing_key_with_expected_zero_is_refused(self, backend: Any) -> None:
        key = conversation("acme")
        assert backend.compare_and_set(key, 0, {"n": 1})
        assert backend.compare_and_set(key, 0, {"n": 2}) is False
        assert backend.load(key) == Versioned(1, {"n": 1})

    def test_stale_version_is_refused(self, backend: Any) -> None:
        key = conversation("acme")
        assert backend.compare_and_set(key, 0, {"n": 1})
        assert backend.compare_and_set(key, 1, {"n": 2})
        assert backend.compare_and_set(key, 1, {"n": "stale"}) is False
        assert backend.compare_and_set(key, 3, {"n": "future"}) is False
        assert backend.load(key) == Versioned(2, {"n": 2})

    def test_delete(self, backend: Any) -> None:
        key = conversation("acme")
        assert backend.delete(key) is False
        assert backend.compare_and_set(key, 0, {"n": 1})
        assert backend.delete(key) is True
        assert backend.load(key) is None
        assert backend.delete(key) is False
        # a deleted key starts again from version 0
        assert backend.compare_and_set(key, 0, {"n": 9})
        assert backend.load(key) == Versioned(1, {"n": 9})

    def test_keys_by_prefix(self, backend: Any) -> None:
        written = [
            "agent/acme:bot",
            conversation("acme", "c1"),
            conversation("acme", "c2"),
            conversation("acme", "c1", agent="other"),
        ]
        for key in written:
            assert backend.compare_and_set(key, 0, {"k": key})
        assert sorted(backend.keys("")) == sorted(written)
        assert sorted(backend.keys("conversation/acme:bot:")) == sorted(written[1:3])
        assert list(backend.keys("agent/")) == ["agent/acme:bot"]
        assert list(backend.keys("conversation/acme:bot:c1")) == [conversation("acme", "c1")]
        assert list(backend.keys("conversation/nobody:")) == []

    def test_many_keys_are_all_listed(self, backend: Any) -> None:
        written = {conversation("acme", f"c{i:04d}") for i in range(600)}
        for key in written:
            assert backend.compare_and_set(key, 0, {})
        assert set(backend.keys("conversation/acme:")) == written
        assert len(list(backend.keys("conversation/acme:"))) == len(written)

    def test_survives_reopen(self, opener: Callable[[str], Any], store_url: str) -> None:
        first = opener(store_url)
        assert first.compare_and_set(conversation("acme"), 0, {"kept": True})
        first.close()
        second = opener(store_url)
        try:
            assert second.load(conversation("acme")) == Versioned(1, {"kept": True})
        finally:
            second.close()

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_malformed_keys_are_refused(self, backend: Any, key: str) -> None:
        with pytest.raises(UsageError, match="state key"):
            backend.load(key)
        with pytest.raises(UsageError, match="state key"):
            backend.compare_and_set(key, 0, {})
        with pytest.raises(UsageError, match="state key"):
            backend.delete(key)
        assert list(backend.keys("")) == []

    def test_bad_arguments_are_refused(self, backend: Any) -> None:
        key = conversation("acme")
        with pytest.raises(UsageError, match="expected_version"):
            backend.compare_and_set(key, -1, {})
        with pytest.raises(UsageError, match="JSON"):
            backend.compare_and_set(key, 0, {"when": object()})
        with pytest.raises(UsageError, match="JSON"):
            backend.compare_and_set(key, 0, {"nan": float("nan")})
        with pytest.raises(UsageError, match="JSON object"):
            backend.compare_and_set(key, 0, ["not", "a", "dict"])  # type: ignore[arg-type]
        assert backend.load(key) is None

    def test_tenants_are_isolated(self, backend: Any) -> None:
        for tenant in ("A", "AB", "B"):
            assert backend.compare_and_set(f"agent/{tenant}:bot", 0, {"tenant": tenant})
            assert backend.compare_and_set(conversation(tenant), 0, {"tenant": tenant})
        for kind in ("agent", "conversation"):
            listed = list(backend.keys(f"{kind}/A:"))
            assert listed and all(key.startswith(f"{kind}/A:") for key in listed)
            for key in listed:
                assert backend.load(key).doc == {"tenant": "A"}
        # the same agent and conversation names under another tenant are another document
        assert backend.compare_and_set(conversation("A"), 1, {"tenant": "A", "n": 2})
        assert backend.load(conversation("B")) == Versioned(1, {"tenant": "B"})
        assert backend.delete(conversation("A"))
        assert backend.load(conversation("B")) is not None

    def test_no_lost_update_across_processes(
        self, backend: Any, opener: Callable[[str], Any], store_url: str
    ) -> None:
        key = conversation("acme", "contended")
        run_workers(_increment_worker, opener, store_url, key)
        held = backend.load(key)
        assert held is not None
        assert held.version == WORKERS * INCREMENTS
        assert held.doc["counter"] == WORKERS * INCREMENTS
        assert sorted(held.doc["seen"]) == sorted(
            f"w{w}-{i}" for w in range(WORKERS) for i in range(INCREMENTS)
        )


class LineageStoreContract:
    """Conformance of a :class:`aqcore.lineage.store.LineageStore`."""

    @pytest.fixture
    def store(self, opener: Callable[[str], Any], store_url: str) -> Iterator[Any]:
        store = opener(store_url)
        yield store
        store.close()

    @staticmethod
    def fill(store: Any, chain: str, n: int) -> list[bytes]:
        envelopes, prev = [], "0" * 64
        for seq in range(1, n + 1):
            envelope = f'{{"chain":"{chain}","seq":{seq}}}'.encode()
            store.append(chain, seq, prev, digest_of(envelope), envelope)
            envelopes.append(envelope)
            prev = digest_of(envelope)
        return envelopes

    def test_is_a_lineage_store(self, store: Any, store_url: str) -> None:
        assert isinstance(store, LineageStore)
        assert store.url == store_url

    def test_empty_chain(self, store: Any) -> None:
        assert store.head("acme:bot:c1") is None
        assert list(store.records("acme:bot:c1")) == []
        assert list(store.chains()) == []

    def test_append_moves_head_and_keeps_order(self, store: Any) -> None:
        envelopes = self.fill(store, "acme:bot:c1", 5)
        assert store.head("acme:bot:c1") == ChainHead(5, digest_of(envelopes[-1]))
        assert list(store.records("acme:bot:c1")) == envelopes

    def test_long_chain_reads_back_whole(self, store: Any) -> None:
        envelopes = self.fill(store, "acme:bot:long", 300)
        assert list(store.records("acme:bot:long")) == envelopes

    def _refused(self, store: Any, chain: str, seq: int, prev: str) -> None:
        before_head, before = store.head(chain), list(store.records(chain))
        with pytest.raises(LineageError, match=chain):
            store.append(chain, seq, prev, digest_of(b"intruder"), b"intruder")
        assert store.head(chain) == before_head
        assert list(store.records(chain)) == before

    def test_wrong_prev_is_refused_and_nothing_stored(self, store: Any) -> None:
        self.fill(store, "acme:bot:c1", 2)
        self._refused(store, "acme:bot:c1", 3, digest_of(b"not the head"))

    def test_wrong_seq_is_refused_and_nothing_stored(self, store: Any) -> None:
        envelopes = self.fill(store, "acme:bot:c1", 2)
        head = digest_of(envelopes[-1])
        self._refused(store, "acme:bot:c1", 2, head)  # duplicate
        self._refused(store, "acme:bot:c1", 4, head)  # gap
        self._refused(store, "acme:bot:c1", 1, "0" * 64)  # restart of an existing chain

    def test_first_record_needs_an_empty_chain(self, store: Any) -> None:
        self._refused(store, "acme:bot:c1", 2, digest_of(b"anything"))
        assert list(store.chains()) == []

    def test_chains_by_prefix_and_tenant(self, store: Any) -> None:
        for chain in ("A:bot:c1", "A:bot:c2", "AB:bot:c1", "B:bot:c1"):
            self.fill(store, chain, 1)
        assert sorted(store.chains()) == ["A:bot:c1", "A:bot:c2", "AB:bot:c1", "B:bot:c1"]
        assert sorted(store.chains("A:")) == ["A:bot:c1", "A:bot:c2"]
        assert list(store.chains("B:bot:")) == ["B:bot:c1"]
        # another tenant's chain with the same names is separate
        assert store.head("A:bot:c1") != store.head("B:bot:c1")
        assert list(store.records("A:bot:c1")) != list(store.records("B:bot:c1"))

    @pytest.mark.parametrize("chain", BAD_CHAINS)
    def test_malformed_chains_are_refused(self, store: Any, chain: str) -> None:
        with pytest.raises(UsageError, match="chain"):
            store.append(chain, 1, "0" * 64, digest_of(b"x"), b"x")
        with pytest.raises(UsageError, match="chain"):
            store.head(chain)
        with pytest.raises(UsageError, match="chain"):
            list(store.records(chain))

    @pytest.mark.parametrize(
        ("seq", "prev", "digest", "envelope"),
        [
            (0, "", "a" * 64, b"x"),
            (2, "short", "a" * 64, b"x"),
            (1, "", "A" * 64, b"x"),
            (1, "", "a" * 64, b""),
        ],
    )
    def test_bad_append_arguments_are_refused(
        self, store: Any, seq: int, prev: str, digest: str, envelope: bytes
    ) -> None:
        with pytest.raises(UsageError, match="acme:bot:c1"):
            store.append("acme:bot:c1", seq, prev, digest, envelope)
        assert store.head("acme:bot:c1") is None

    def test_concurrent_appends_form_one_chain(
        self, store: Any, opener: Callable[[str], Any], store_url: str
    ) -> None:
        run_workers(_append_worker, opener, store_url, "acme:bot:race")
        records = list(store.records("acme:bot:race"))
        assert len(records) == WORKERS * APPENDS
        assert [int(r.decode().rsplit(":", 1)[1].rstrip("}")) for r in records] == list(
            range(1, len(records) + 1)
        )
        assert store.head("acme:bot:race") == ChainHead(len(records), digest_of(records[-1]))
