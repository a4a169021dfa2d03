"""Receipts from the runtime: every invocation is sealed and chained; a degraded invocation says
so; a lineage store that does not answer loses no receipt."""

from __future__ import annotations

import pytest

from aqcore.errors import LineageError
from aqcore.hookspecs import hookimpl
from aqcore.lineage import JsonlLineageStore, Keyring, generate_key, verify_store
from aqcore.lineage.dsse import parse_envelope
from aqcore.lineage.statement import parse_statement
from aqcore.testing import ScriptedAdapter

from .test_state import FlakyBackend


def predicate_of(envelope: bytes) -> dict:
    return parse_statement(parse_envelope(envelope).payload).predicate


@pytest.fixture
def keys(tmp_path):
    key_dir = tmp_path / "keys"
    generate_key(key_dir)
    return key_dir


def test_each_invocation_leaves_a_verifiable_chained_receipt(make_runtime, keys, tmp_path):
    path = tmp_path / "lineage.jsonl"
    runtime = make_runtime(ScriptedAdapter.from_pieces(["Hi", " there"]), lineage=str(path), key=str(keys))
    first = runtime.generate("a", agent="a", conversation="c")
    second = runtime.generate("b", agent="a", conversation="c")
    assert first.receipt is not None and second.receipt is not None
    assert (first.receipt["seq"], second.receipt["seq"]) == (1, 2)
    assert second.receipt["prev"] == first.receipt["digest"]
    assert first.receipt["id"] == first.scope.invocation
    report = verify_store(JsonlLineageStore(str(path)), Keyring.load(keys / "keyring.json"))
    assert report.ok, report.summary()
    assert report.records == 2


def test_a_degraded_invocation_is_visible_in_its_receipt(make_runtime, keys, tmp_path, pm):
    backend = FlakyBackend()
    backend.mode = "down"

    class Plugin:
        @hookimpl
        def aq_register_state_backends(self, register):
            register("flaky", lambda url: backend)

    pm.register(Plugin(), "inline-flaky-lineage", distribution="tests", version="0")
    path = tmp_path / "lineage.jsonl"
    runtime = make_runtime(ScriptedAdapter.from_pieces(["x"]), store="flaky:", lineage=str(path), key=str(keys))
    result = runtime.generate("a", agent="a", conversation="c")
    envelope = next(JsonlLineageStore(str(path)).records("default:a:c"))
    predicate = predicate_of(envelope)
    assert predicate["state_status"] == "partial"
    assert predicate["confidence"] == "reduced"
    assert result.receipt is not None and result.receipt["seq"] == 1


class DownStore(JsonlLineageStore):
    """A real JSONL store that can refuse every call, as a store that is down would."""

    down = False

    def append(self, chain, seq, prev, digest, envelope):
        if DownStore.down:
            raise LineageError("lineage store unreachable")
        return super().append(chain, seq, prev, digest, envelope)

    def head(self, chain):
        if DownStore.down:
            raise LineageError("lineage store unreachable")
        return super().head(chain)


def test_receipts_wait_locally_while_the_store_is_down_and_chain_without_gaps(make_runtime, keys, tmp_path, pm):
    class Plugin:
        @hookimpl
        def aq_register_lineage_stores(self, register):
            register("down", lambda url: DownStore(str(tmp_path / "lineage.jsonl")))

    pm.register(Plugin(), "inline-down-lineage", distribution="tests", version="0")
    runtime = make_runtime(ScriptedAdapter.from_pieces(["ok"]), lineage="down://x", key=str(keys))
    runtime.generate("1", agent="a", conversation="c")
    DownStore.down = True
    try:
        waiting = [runtime.generate(str(i), agent="a", conversation="c") for i in range(2, 4)]
    finally:
        DownStore.down = False
    assert all(r.receipt is not None and r.receipt["status"] == "pending" for r in waiting)
    last = runtime.generate("4", agent="a", conversation="c")
    assert last.receipt is not None and last.receipt["seq"] == 4
    store = JsonlLineageStore(str(tmp_path / "lineage.jsonl"))
    report = verify_store(store, Keyring.load(keys / "keyring.json"))
    assert report.ok, report.summary()
    ids = [predicate_of(e)["invocation"] for e in store.records("default:a:c")]
    assert ids[1:3] == [r.scope.invocation for r in waiting]


def test_kept_leaves_prove_one_observation_against_the_signed_root(make_runtime, keys, tmp_path, capsys):
    from aqcore.cli.main import main

    leaves = tmp_path / "leaves"
    runtime = make_runtime(ScriptedAdapter.from_pieces(["one", " two", " three"]), lineage=str(tmp_path / "l.jsonl"),
                           key=str(keys), leaves=str(leaves))
    result = runtime.generate("x", agent="a", conversation="c")
    path = leaves / f"{result.scope.invocation}.leaves.jsonl"
    assert len(path.read_bytes().splitlines()) >= 3 + 2  # start, three observations, finish
    root = result.receipt["root"]
    assert main(["lineage", "prove", "--leaves", str(path), "--leaf", "2", "--root", root]) == 0
    assert main(["lineage", "prove", "--leaves", str(path), "--leaf", "2", "--root", "00" * 32]) == 1
    capsys.readouterr()
