"""Tamper tests: every change to a chain of receipts is detected and located."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest
from conftest import T0, make_receipt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aqcore.lineage import (
    ChainHead,
    Keyring,
    ReceiptBuilder,
    parse_statement,
    prove_inclusion,
    verify_leaf,
    verify_records,
)
from aqcore.lineage.canonical import canonical_bytes
from aqcore.lineage.dsse import Envelope, parse_envelope, sign_envelope
from aqcore.lineage.keys import US_PER_DAY, KeyInfo, Signer, key_id_for
from aqcore.lineage.leaves import observation_record
from aqcore.lineage.statement import GENESIS_PREV


def new_signer(not_before: int = T0, days: int = 365) -> Signer:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer(key, KeyInfo(key_id_for(key.public_key()), raw, not_before, not_before + days * US_PER_DAY))


SIGNER = new_signer()
KEYRING = Keyring([SIGNER.info])


def build_chains() -> tuple[list[bytes], list[str]]:
    """Two conversations, interleaved: A1 B1 A2 A3 B2 A4 B3 A5."""
    order = "ABAABABA"
    heads: dict[str, tuple[int, str]] = {}
    envelopes, chains = [], []
    for conv in order:
        seq, prev = heads.get(conv, (0, GENESIS_PREV))
        r = make_receipt(SIGNER, conversation=conv, seq=seq + 1, prev=prev)
        heads[conv] = (r.seq, r.digest)
        envelopes.append(r.envelope)
        chains.append(r.chain)
    return envelopes, chains


ENVELOPES, CHAINS = build_chains()
N = len(ENVELOPES)


def first(records: list, keyring: Keyring = KEYRING, **kw):  # type: ignore[no-untyped-def]
    report = verify_records(records, keyring, **kw)
    assert not report.ok, "tampering went undetected"
    return report.first


def test_untouched_chains_verify() -> None:
    report = verify_records(ENVELOPES, KEYRING)
    assert report.ok, report.summary()
    assert report.records == N
    assert {c: s.seq for c, s in report.chains.items()} == {"acme:bot:A": 5, "acme:bot:B": 3}
    assert report.summary().startswith("ok: 8 receipts in 2 chains")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_detected_at_its_record(data: st.DataObject) -> None:
    i = data.draw(st.integers(0, N - 1), label="record")
    env = bytearray(ENVELOPES[i])
    pos = data.draw(st.integers(0, len(env) - 1), label="byte")
    env[pos] ^= data.draw(st.integers(1, 255), label="xor")
    records = list(ENVELOPES)
    records[i] = bytes(env)
    problem = first(records)
    assert problem.index == i


def _next_index_of_chain(records: list[bytes], start: int, chain: str) -> int:
    for j in range(start, len(records)):
        if CHAINS[ENVELOPES.index(records[j])] == chain:
            return j
    raise AssertionError


@given(st.integers(0, N - 1))
def test_dropped_record_is_detected(k: int) -> None:
    records = ENVELOPES[:k] + ENVELOPES[k + 1 :]
    chain = CHAINS[k]
    heads = {c: ChainHead(s.seq, s.digest) for c, s in verify_records(ENVELOPES, KEYRING).chains.items()}
    problem = first(records, heads=heads)
    assert problem.chain == chain
    later = [j for j in range(k, len(records)) if CHAINS[ENVELOPES.index(records[j])] == chain]
    if later:  # the chain's next record names the gap
        assert (problem.index, problem.code) == (later[0], "seq")
    else:  # the chain's last record was dropped: only the trusted head shows it
        assert problem.code == "head"


@given(st.integers(0, N - 1), st.integers(0, N - 1))
def test_reordered_records_of_a_chain_are_detected(a: int, b: int) -> None:
    a, b = min(a, b), max(a, b)
    if a == b or CHAINS[a] != CHAINS[b]:
        return
    records = list(ENVELOPES)
    records[a], records[b] = records[b], records[a]
    problem = first(records)
    assert (problem.index, problem.chain, problem.code) == (a, CHAINS[a], "seq")


@given(st.integers(0, N - 1), st.data())
def test_duplicated_record_is_detected(k: int, data: st.DataObject) -> None:
    pos = data.draw(st.integers(k + 1, N))
    records = [*ENVELOPES[:pos], ENVELOPES[k], *ENVELOPES[pos:]]
    problem = first(records)
    assert (problem.index, problem.code) == (pos, "duplicate")


@given(st.integers(0, N))
def test_inserted_foreign_record_is_detected(pos: int) -> None:
    intruder = make_receipt(new_signer(), conversation="A", seq=2, prev=GENESIS_PREV).envelope
    records = [*ENVELOPES[:pos], intruder, *ENVELOPES[pos:]]
    problem = first(records)
    assert (problem.index, problem.code) == (pos, "unknown_key")


def test_fork_is_reported() -> None:
    a1 = parse_statement(parse_envelope(ENVELOPES[0]).payload)
    assert a1.seq == 1
    # a second, validly signed receipt with the same (conversation, seq): a fork
    fork = make_receipt(
        SIGNER,
        conversation="A",
        seq=2,
        prev=hashlib.sha256(parse_envelope(ENVELOPES[0]).payload).hexdigest(),
        invocation="other",
        text="different",
    )
    records = [*ENVELOPES, fork.envelope]
    problem = first(records)
    assert (problem.index, problem.chain, problem.seq, problem.code) == (N, "acme:bot:A", 2, "fork")
    assert "record 2" in problem.reason


def test_receipt_replayed_into_another_conversation_is_detected() -> None:
    # stored under chain B (as a store would file it) but signed for chain A
    stored = [(CHAINS[i], e) for i, e in enumerate(ENVELOPES)]
    stored.append(("acme:bot:B", ENVELOPES[0]))
    problem = first(stored)
    assert (problem.index, problem.chain, problem.code) == (N, "acme:bot:B", "wrong_chain")
    # without store labels, the replayed receipt duplicates its own chain
    assert first([*ENVELOPES, ENVELOPES[0]]).code == "duplicate"


def test_swapped_payload_type_is_detected() -> None:
    env = parse_envelope(ENVELOPES[3])
    swapped = replace(env, payload_type="application/json").to_bytes()
    problem = first([*ENVELOPES[:3], swapped, *ENVELOPES[4:]])
    assert (problem.index, problem.code) == (3, "payload_type")
    # re-signed by the right key under another type: still refused
    resigned = sign_envelope(env.payload, SIGNER._private, SIGNER.key_id, "application/json").to_bytes()
    assert first([*ENVELOPES[:3], resigned, *ENVELOPES[4:]]).code == "payload_type"


def test_key_used_outside_its_window_is_detected() -> None:
    info = SIGNER.info
    ended = Keyring([replace(info, not_after_us=T0 + 3500)])  # A1 B1 A2 end before, A3 (T0+3500) not
    problem = first(ENVELOPES, ended)
    assert (problem.index, problem.code) == (3, "key_window")
    not_yet = Keyring([replace(info, not_before_us=T0 + 10 * US_PER_DAY)])
    assert (first(ENVELOPES, not_yet).index, first(ENVELOPES, not_yet).code) == (0, "key_window")


def test_revoked_key_is_detected() -> None:
    revoked = Keyring([replace(SIGNER.info, status="revoked")])
    problem = first(ENVELOPES, revoked)
    assert (problem.index, problem.code) == (0, "key_revoked")


def test_wrong_genesis_and_wrong_prev() -> None:
    bad_genesis = make_receipt(SIGNER, conversation="Z", seq=1, prev="1" * 64)
    assert first([bad_genesis.envelope]).code == "genesis"
    r1 = make_receipt(SIGNER, conversation="Z", seq=1)
    r2 = make_receipt(SIGNER, conversation="Z", seq=2, prev="2" * 64)
    problem = first([r1.envelope, r2.envelope])
    assert (problem.index, problem.seq, problem.code) == (1, 2, "prev")


def test_key_id_in_envelope_must_match_predicate() -> None:
    env = parse_envelope(ENVELOPES[0])
    other = new_signer()
    forged = sign_envelope(env.payload, other._private, other.key_id)
    problem = first([forged.to_bytes()], Keyring([SIGNER.info, other.info]))
    assert problem.code == "key_mismatch"


def test_signed_but_malformed_payload_is_located() -> None:
    payload = canonical_bytes(
        {"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicateType": "x", "predicate": {}}
    )
    env = sign_envelope(payload, SIGNER._private, SIGNER.key_id).to_bytes()
    problem = first([ENVELOPES[0], env])
    assert (problem.index, problem.code) == (1, "payload")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_garbage_never_raises(garbage: list[bytes]) -> None:
    report = verify_records([*garbage, *ENVELOPES[:2]], KEYRING)
    assert len(report.problems) >= len(garbage)
    assert [p.index for p in report.problems][: len(garbage)] == list(range(len(garbage)))


def test_conversation_filter() -> None:
    report = verify_records(ENVELOPES, KEYRING, conversation="B")
    assert report.ok and list(report.chains) == ["acme:bot:B"] and report.records == 3
    records = list(ENVELOPES)
    records[0] = records[0][:-3] + b"!}]"
    # an unreadable record could belong to any chain: it is reported whatever the filter
    assert first(records, conversation="B").code == "malformed"
    # filed under chain A by a store, its damage is A's only
    labelled = list(zip(CHAINS, records, strict=True))
    assert verify_records(labelled, KEYRING, conversation="acme:bot:B").ok
    assert first(labelled, conversation="A").index == 0


def test_degraded_invocation_is_visible_in_its_receipt() -> None:
    r = make_receipt(SIGNER, conversation="D", state_status="partial")
    st_ = parse_statement(parse_envelope(r.envelope).payload)
    assert st_.predicate["state_status"] == "partial"
    assert st_.predicate["confidence"] == "reduced"
    assert st_.predicate["degraded_reason"] == "state backend down"
    assert verify_records([r.envelope], KEYRING).ok


def test_predicate_fields_and_subjects() -> None:
    env = parse_envelope(ENVELOPES[0])
    statement = json.loads(env.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://aq.dev/receipt/v1"
    assert statement["subject"][1] == {
        "name": "aq:text",
        "digest": {"sha256": hashlib.sha256(b"hello").hexdigest()},
    }
    p = statement["predicate"]
    assert p["entropy_spent"] == {"invocation": 750_000, "conversation": 1_500_000}
    assert p["verdicts"] == {"pii": {"redact": 1}}
    assert p["prev"] == GENESIS_PREV and p["seq"] == 1 and p["tree_size"] == 4
    assert base64.b64decode(json.loads(ENVELOPES[0])["payload"]) == env.payload


def test_inclusion_proof_of_one_observation_against_the_receipt_root() -> None:
    builder = ReceiptBuilder(tenant="acme", agent="bot", conversation="P", invocation="p1", start_us=T0 + 5)
    records = [observation_record(i, f"w{i}", t_us=T0 + i) for i in range(13)]
    for rec in records:
        builder.add_leaf(rec)
    sealed = builder.seal(
        signer=SIGNER, seq=1, prev=GENESIS_PREV, text="x", finish_reason="stop", end_us=T0 + 99
    )
    root = parse_statement(parse_envelope(sealed.envelope).payload).root
    proof = prove_inclusion(builder.leaves, 7)
    assert verify_leaf(records[7], proof, root)
    assert not verify_leaf(records[8], proof, root)
    assert not verify_leaf(records[7], proof, "0" * 64)
    assert proof.to_dict()["tree_size"] == 13


def test_envelope_class_round_trip() -> None:
    env = parse_envelope(ENVELOPES[1])
    assert isinstance(env, Envelope) and env.to_bytes() == ENVELOPES[1]


@pytest.mark.parametrize("code", ["seq", "prev"])
def test_problem_string_names_record_chain_and_seq(code: str) -> None:
    records = [ENVELOPES[0], ENVELOPES[3]] if code == "seq" else [ENVELOPES[0]]
    if code == "prev":
        records.append(make_receipt(SIGNER, conversation="A", seq=2, prev="3" * 64).envelope)
    problem = first(records)
    assert str(problem).startswith("record 1 (chain acme:bot:A, seq ")
