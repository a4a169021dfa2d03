"""Inclusion proofs (one leaf in an invocation's tree) and consistency proofs (a smaller tree is
a prefix of a larger one), as JSON-friendly objects with hex hashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LineageError
from .leaves import leaf_bytes, leaf_hash
from .merkle import consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion


def _hashes(leaves: Sequence[bytes]) -> list[bytes]:
    return [leaf_hash(b) for b in leaves]


def _unhex(value: Any, what: str) -> bytes:
    try:
        data = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise LineageError(f"{what} must be hex") from None
    if len(data) != 32:
        raise LineageError(f"{what} must be 32 bytes of hex")
    return data


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``index`` of a tree of ``tree_size`` leaves hashes to ``root`` through ``path``."""

    index: int
    tree_size: int
    leaf_hash: str
    path: tuple[str, ...]
    root: str

    def verify(self, expected_root: str | None = None) -> bool:
        """Check the proof (and that its root is ``expected_root`` when given)."""
        if expected_root is not None and expected_root != self.root:
            return False
        try:
            path = [_unhex(p, "path entry") for p in self.path]
            leaf, top = _unhex(self.leaf_hash, "leaf_hash"), _unhex(self.root, "root")
        except LineageError:
            return False
        return verify_inclusion(leaf, self.index, self.tree_size, path, top)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash,
            "path": list(self.path),
            "root": self.root,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> InclusionProof:
        return cls(
            int(obj["index"]),
            int(obj["tree_size"]),
            str(obj["leaf_hash"]),
            tuple(str(p) for p in obj["path"]),
            str(obj["root"]),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``first`` leaves (``first_root``) is a prefix of the tree of ``second``."""

    first: int
    second: int
    first_root: str
    second_root: str
    path: tuple[str, ...]

    def verify(self) -> bool:
        try:
            path = [_unhex(p, "path entry") for p in self.path]
            a, b = _unhex(self.first_root, "first_root"), _unhex(self.second_root, "second_root")
        except LineageError:
            return False
        return verify_consistency(self.first, self.second, a, b, path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root": self.first_root,
            "second_root": self.second_root,
            "path": list(self.path),
        }


def as_leaf_bytes(leaf: bytes | Mapping[str, Any]) -> bytes:
    """Canonical bytes of a leaf given as a record or as its bytes already."""
    return leaf if isinstance(leaf, bytes) else leaf_bytes(leaf)


def prove_inclusion(leaves: Sequence[bytes | Mapping[str, Any]], index: int) -> InclusionProof:
    """The inclusion proof of leaf ``index`` among an invocation's leaves (records or bytes)."""
    hashes = _hashes([as_leaf_bytes(leaf) for leaf in leaves])
    if not 0 <= index < len(hashes):
        raise LineageError(f"leaf {index} does not exist; the invocation has {len(hashes)} leaves")
    path = inclusion_proof(index, hashes)
    return InclusionProof(
        index, len(hashes), hashes[index].hex(), tuple(p.hex() for p in path), root(hashes).hex()
    )


def verify_leaf(leaf: bytes | Mapping[str, Any], proof: InclusionProof, expected_root: str) -> bool:
    """True if ``leaf`` is the leaf the proof is about and the proof leads to ``expected_root``
    (e.g. a receipt's invocation subject digest)."""
    return leaf_hash(as_leaf_bytes(leaf)).hex() == proof.leaf_hash and proof.verify(expected_root)


def prove_consistency(
    leaves: Sequence[bytes | Mapping[str, Any]], first: int, second: int | None = None
) -> ConsistencyProof:
    """The consistency proof between the first ``first`` and first ``second`` leaves."""
    hashes = _hashes([as_leaf_bytes(leaf) for leaf in leaves])
    n = len(hashes) if second is None else second
    if not 0 <= first <= n <= len(hashes):
        raise LineageError(f"need 0 <= first ({first}) <= second ({n}) <= leaves ({len(hashes)})")
    path = consistency_proof(first, hashes[:n])
    return ConsistencyProof(
        first, n, root(hashes[:first]).hex(), root(hashes[:n]).hex(), tuple(p.hex() for p in path)
    )


def leaves_root(leaves: Sequence[bytes | Mapping[str, Any]]) -> str:
    """The Merkle root (hex) over leaves, to compare with a receipt's invocation subject."""
    return root(_hashes([as_leaf_bytes(leaf) for leaf in leaves])).hex()
