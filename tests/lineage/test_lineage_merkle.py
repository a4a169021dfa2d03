"""RFC 9162 Merkle trees: roots and proofs against brute-force recomputation from the RFC text."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aqcore.lineage.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(n)]


def mth(d: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 §2.1.1 defines it (recursive split at the largest power of 2 < n)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("n", range(1, 70))
def test_root_matches_the_rfc_definition(n: int) -> None:
    assert root(leaves(n)) == mth(leaves(n))


@pytest.mark.parametrize("n", range(1, 34))
def test_every_inclusion_proof_verifies_and_tampering_fails(n: int) -> None:
    d = leaves(n)
    top = root(d)
    for m in range(n):
        proof = inclusion_proof(m, d)
        assert verify_inclusion(d[m], m, n, proof, top)
        assert not verify_inclusion(d[(m + 1) % n], m, n, proof, top) or n == 1
        assert not verify_inclusion(d[m], m, n, proof, hashlib.sha256(top).digest())
        if proof:
            bad = list(proof)
            bad[-1] = hashlib.sha256(bad[-1]).digest()
            assert not verify_inclusion(d[m], m, n, bad, top)
            assert not verify_inclusion(d[m], m, n, proof[:-1], top)
        assert not verify_inclusion(d[m], m, n, [*proof, top], top)
    assert not verify_inclusion(d[0], n, n, [], top)


@pytest.mark.parametrize("n", range(1, 34))
def test_every_consistency_proof_verifies_and_tampering_fails(n: int) -> None:
    d = leaves(n)
    for m in range(0, n + 1):
        proof = consistency_proof(m, d)
        assert verify_consistency(m, n, mth(d[:m]), mth(d), proof), (m, n)
        if 0 < m < n:
            assert proof
            assert not verify_consistency(m, n, mth(d[:m]), mth(d), proof[:-1])
            bad = list(proof)
            bad[0] = hashlib.sha256(bad[0]).digest()
            assert not verify_consistency(m, n, mth(d[:m]), mth(d), bad)
            other = leaves(n)
            other[m - 1] = hashlib.sha256(b"changed").digest()  # history rewritten inside the prefix
            assert not verify_consistency(m, n, mth(d[:m]), mth(other), proof)
            assert not verify_consistency(m, n, mth(other[:m]), mth(d), proof)


@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=80), st.data())
def test_hypothesis_proofs(raw: list[bytes], data: st.DataObject) -> None:
    d = [hashlib.sha256(b"\x00" + x).digest() for x in raw]
    n = len(d)
    assert root(d) == mth(d)
    m = data.draw(st.integers(0, n - 1))
    assert verify_inclusion(d[m], m, n, inclusion_proof(m, d), mth(d))
    first = data.draw(st.integers(0, n))
    assert verify_consistency(first, n, mth(d[:first]), mth(d), consistency_proof(first, d))


def test_node_hash_prefix() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert root([a, b]) == node_hash(a, b)


def test_degenerate_consistency_cases() -> None:
    d = leaves(4)
    assert verify_consistency(4, 4, root(d), root(d), [])
    assert not verify_consistency(4, 4, root(d), root(leaves(5)), [])
    assert not verify_consistency(0, 4, root(d), root(d), [])
    assert not verify_consistency(3, 2, root(d), root(d), [])
    assert not verify_consistency(2, 4, root(d[:2]), root(d), [])
    with pytest.raises(ValueError):
        consistency_proof(5, d)
    with pytest.raises(ValueError):
        inclusion_proof(4, d)
