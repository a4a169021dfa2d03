"""The JSON-lines lineage store: the shared store contract plus file-specific behaviour."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from conftest import T0, make_receipt  # noqa: E402
from store_contract import LineageStoreContract  # noqa: E402

from aqcore.errors import LineageError, UsageError  # noqa: E402
from aqcore.lineage import (  # noqa: E402
    JsonlLineageStore,
    Keyring,
    ReceiptBuilder,
    export_store,
    read_lineage_file,
    verify_records,
    verify_store,
)
from aqcore.lineage.jsonl import path_from_url  # noqa: E402
from aqcore.lineage.statement import GENESIS_PREV  # noqa: E402


class TestJsonlContract(LineageStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return (tmp_path / "lineage.jsonl").as_uri()

    @pytest.fixture
    def opener(self) -> Callable[[str], Any]:
        return JsonlLineageStore


def test_plain_paths_and_bad_urls(tmp_path: Path) -> None:
    assert path_from_url(str(tmp_path / "x.jsonl")) == tmp_path / "x.jsonl"
    assert path_from_url((tmp_path / "x.jsonl").as_uri()) == tmp_path / "x.jsonl"
    for bad in ("redis://h/0", "file://host/x.jsonl", "file:relative.jsonl"):
        with pytest.raises(UsageError):
            path_from_url(bad)


def test_seal_and_append_chain_verifies_and_exports(tmp_path: Path, signer, keyring) -> None:  # type: ignore[no-untyped-def]
    store = JsonlLineageStore(str(tmp_path / "l.jsonl"))
    for conv in ("c1", "c2", "c1"):
        b = ReceiptBuilder(
            tenant="acme", agent="bot", conversation=conv, invocation=f"i-{conv}", start_us=T0 + 5
        )
        b.add_event("start", T0 + 5)
        b.seal_and_append(store, signer=signer, text="hi", finish_reason="stop", end_us=T0 + 9)
    assert list(store.chains()) == ["acme:bot:c1", "acme:bot:c2"]
    head = store.head("acme:bot:c1")
    assert head is not None and head.seq == 2
    report = verify_store(store, keyring)
    assert report.ok, report.summary()
    out = tmp_path / "export.jsonl"
    assert export_store(store, out, keyring) == 3
    lf = read_lineage_file(out)
    assert lf.keyring is not None and lf.heads["acme:bot:c1"] == head
    assert verify_records(lf.records, lf.keyring, heads=lf.heads).ok
    # the store file itself reads as a lineage file too, with chain labels
    assert verify_records(read_lineage_file(store.path).records, keyring).ok
    assert store.export(tmp_path / "e2.jsonl", keyring, conversation="c2") == 1


def test_replay_line_in_store_file_is_detected(tmp_path: Path, signer, keyring) -> None:  # type: ignore[no-untyped-def]
    store = JsonlLineageStore(str(tmp_path / "l.jsonl"))
    a = make_receipt(signer, conversation="A")
    store.append(a.chain, 1, GENESIS_PREV, a.digest, a.envelope)
    # a receipt of chain A filed in chain B passes the store's head check but not verification
    store.append("acme:bot:B", 1, GENESIS_PREV, a.digest, a.envelope)
    report = verify_store(store, keyring)
    assert (
        report.first is not None and report.first.code == "wrong_chain" and report.first.chain == "acme:bot:B"
    )


def test_truncated_tail_is_dropped_before_append(tmp_path: Path, signer) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "l.jsonl"
    store = JsonlLineageStore(str(path))
    r1 = make_receipt(signer, seq=1)
    store.append(r1.chain, 1, GENESIS_PREV, r1.digest, r1.envelope)
    with open(path, "ab") as f:
        f.write(b'{"chain":"acme:bot:c1","seq":2,"prev')  # a writer died mid-line
    fresh = JsonlLineageStore(str(path))
    assert fresh.head(r1.chain) is not None and fresh.head(r1.chain).seq == 1  # type: ignore[union-attr]
    r2 = make_receipt(signer, seq=2, prev=r1.digest)
    fresh.append(r2.chain, 2, r1.digest, r2.digest, r2.envelope)
    assert list(fresh.records(r1.chain)) == [r1.envelope, r2.envelope]


def test_corrupt_line_refuses_appends_with_a_pointer_to_verify(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_bytes(b"not json\n")
    with pytest.raises(LineageError, match="aq lineage verify"):
        JsonlLineageStore(str(path)).head("acme:bot:c1")


def test_tampered_store_file_is_located(tmp_path: Path, signer, keyring: Keyring) -> None:  # type: ignore[no-untyped-def]
    store = JsonlLineageStore(str(tmp_path / "l.jsonl"))
    prev = GENESIS_PREV
    for seq in range(1, 5):
        r = make_receipt(signer, seq=seq, prev=prev)
        store.append(r.chain, seq, prev, r.digest, r.envelope)
        prev = r.digest
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'\\"', b"", 1) if b'\\"' in lines[2] else lines[2][:40] + lines[2][41:]
    store.path.write_bytes(b"".join(lines))
    report = verify_records(read_lineage_file(store.path).records, keyring)
    assert report.first is not None and report.first.index == 2
