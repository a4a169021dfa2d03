"""Credentialed lineage: leaves, Merkle trees, DSSE receipts, keys, stores and verification."""

from __future__ import annotations

import importlib
from typing import Any

# imported on first use: plugin discovery must not pay for cryptography and friends
_EXPORTS = {
    "ChainHead": "store",
    "ConsistencyProof": "proofs",
    "GENESIS_PREV": "statement",
    "InclusionProof": "proofs",
    "JsonlLineageStore": "jsonl",
    "KeyInfo": "keys",
    "Keyring": "keys",
    "LineageFile": "export",
    "LineageStore": "store",
    "PAYLOAD_TYPE": "dsse",
    "PREDICATE_TYPE": "statement",
    "Problem": "verify",
    "ReceiptBuilder": "receipt",
    "SealedReceipt": "receipt",
    "Signer": "keys",
    "Statement": "statement",
    "VerifyReport": "verify",
    "event_record": "leaves",
    "export_store": "export",
    "generate_key": "keys",
    "leaf_bytes": "leaves",
    "leaf_hash": "leaves",
    "leaves_root": "proofs",
    "load_signer": "keys",
    "next_link": "receipt",
    "observation_record": "leaves",
    "parse_statement": "statement",
    "prove_consistency": "proofs",
    "prove_inclusion": "proofs",
    "read_lineage_file": "export",
    "record_from_observation": "leaves",
    "revoke_key": "keys",
    "rotate_key": "keys",
    "verify_leaf": "proofs",
    "verify_records": "verify",
    "verify_store": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aqcore.lineage' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
