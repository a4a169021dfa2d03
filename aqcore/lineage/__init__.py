"""Credentialed lineage: leaves, Merkle trees, DSSE receipts, keys, stores and verification."""

from __future__ import annotations

from .dsse import PAYLOAD_TYPE
from .export import LineageFile, export_store, read_lineage_file
from .jsonl import JsonlLineageStore
from .keys import KeyInfo, Keyring, Signer, generate_key, load_signer, revoke_key, rotate_key
from .leaves import event_record, leaf_bytes, leaf_hash, observation_record, record_from_observation
from .proofs import (
    ConsistencyProof,
    InclusionProof,
    leaves_root,
    prove_consistency,
    prove_inclusion,
    verify_leaf,
)
from .receipt import ReceiptBuilder, SealedReceipt, next_link
from .statement import GENESIS_PREV, PREDICATE_TYPE, Statement, parse_statement
from .store import ChainHead, LineageStore
from .verify import Problem, VerifyReport, verify_records, verify_store

__all__ = [
    "GENESIS_PREV",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "ChainHead",
    "ConsistencyProof",
    "InclusionProof",
    "JsonlLineageStore",
    "KeyInfo",
    "Keyring",
    "LineageFile",
    "LineageStore",
    "Problem",
    "ReceiptBuilder",
    "SealedReceipt",
    "Signer",
    "Statement",
    "VerifyReport",
    "event_record",
    "export_store",
    "generate_key",
    "leaf_bytes",
    "leaf_hash",
    "leaves_root",
    "load_signer",
    "next_link",
    "observation_record",
    "parse_statement",
    "prove_consistency",
    "prove_inclusion",
    "read_lineage_file",
    "record_from_observation",
    "revoke_key",
    "rotate_key",
    "verify_leaf",
    "verify_records",
    "verify_store",
]
