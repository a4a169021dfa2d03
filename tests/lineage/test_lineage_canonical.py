"""Canonical JSON: the fast path is byte-identical to rfc8785; parsing refuses other encodings."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from aqcore.errors import LineageError
from aqcore.lineage.canonical import INT_MAX, INT_MIN, canonical_bytes, fast_canonical, parse_canonical
from aqcore.lineage.leaves import event_record, leaf_bytes, leaf_hash, observation_record

ints = st.integers(INT_MIN, INT_MAX)
scalars = st.one_of(ints, st.text(), st.none(), st.booleans())
flat_values = st.one_of(scalars, st.lists(st.one_of(ints, st.text(), st.none(), st.booleans()), max_size=5))
ascii_keys = st.text(st.characters(max_codepoint=127), max_size=12)


@given(st.dictionaries(ascii_keys, flat_values, max_size=12))
def test_fast_path_equals_rfc8785(record: dict) -> None:
    fast = fast_canonical(record)
    assert fast is not None
    assert fast == rfc8785.dumps(record)
    assert canonical_bytes(record) == fast


@given(
    index=ints,
    text=st.text(),
    tok=st.one_of(st.none(), ints),
    lp=st.floats(-50, 0),
    s=st.floats(0, 50),
    h=st.one_of(st.none(), st.floats(0, 12)),
    t=ints,
    verdicts=st.lists(st.text(max_size=20), max_size=3),
)
def test_observation_leaf_is_rfc8785(index, text, tok, lp, s, h, t, verdicts) -> None:  # type: ignore[no-untyped-def]
    record = observation_record(
        index, text, t_us=t, token_id=tok, logprob=lp, surprisal=s, entropy=h, verdicts=verdicts
    )
    assert leaf_bytes(record) == rfc8785.dumps(record)
    assert parse_canonical(leaf_bytes(record)) == record


@given(
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_general_values_match_rfc8785(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert parse_canonical(canonical_bytes(value)) == value


def test_non_bmp_keys_sort_by_utf16() -> None:
    record = {"\U0001f600": 1, "\uff5e": 2}  # code point order and UTF-16 order disagree
    assert fast_canonical(record) is None
    assert canonical_bytes(record) == rfc8785.dumps(record)
    assert canonical_bytes(record).index("\uff5e".encode()) > canonical_bytes(record).index(
        "\U0001f600".encode()
    )


def test_leaf_hash_is_rfc9162_leaf() -> None:
    import hashlib

    data = leaf_bytes(event_record("start", t_us=1))
    assert data == b'{"event":"start","kind":"event","t_us":1}'
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()


@pytest.mark.parametrize(
    ("record", "field"),
    [({"a": 1.5}, "record.a"), ({"a": [1, 2.0]}, r"record.a\[1\]"), ({"a": {"b": 0.1}}, "record.a.b")],
)
def test_leaf_refuses_floats_naming_the_field(record: dict, field: str) -> None:
    with pytest.raises(LineageError, match=field):
        leaf_bytes(record)


def test_unrepresentable_values_raise_lineage_error() -> None:
    with pytest.raises(LineageError, match="canonical"):
        canonical_bytes({"big": 2**53})
    with pytest.raises(LineageError):
        canonical_bytes({"s": "\ud800"})


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # key order
        b'{"a": 1}',  # whitespace
        b'{"a":1.0}',  # float
        b'{"a":NaN}',
        b'{"a":9007199254740992}',  # beyond 2**53 - 1
        b'{"a":"\\u00e9"}',  # escaped where RFC 8785 writes raw UTF-8
        b'{"a":"\\/"}',
        b'{"a":"\\ud800"}',
        b"not json",
    ],
)
def test_parse_canonical_refuses_other_encodings(data: bytes) -> None:
    with pytest.raises(LineageError):
        parse_canonical(data)


def test_event_record_checks_event_and_reserved_fields() -> None:
    with pytest.raises(ValueError, match="unknown lineage event"):
        event_record("nope", t_us=1)
    with pytest.raises(ValueError, match="reserved"):
        event_record("start", t_us=1, kind="x")
    assert json.loads(leaf_bytes(event_record("rollback", t_us=2, at=3, metric="pii")))["metric"] == "pii"
