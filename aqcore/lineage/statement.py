"""The receipt payload: an in-toto v1 Statement in RFC 8785 canonical JSON.

Subjects: the invocation's Merkle root (``aq:invocation/<id>``) and the sha256 of the released
text (``aq:text``). Predicate type ``https://aq.dev/receipt/v1``; its fields are listed in
:data:`PREDICATE_FIELDS` and in docs/lineage.md. ``prev`` of a conversation's first receipt is
:data:`GENESIS_PREV` (64 zeros).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LineageError
from .canonical import canonical_bytes, parse_canonical

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://aq.dev/receipt/v1"
GENESIS_PREV = "0" * 64
TEXT_SUBJECT = "aq:text"
INVOCATION_SUBJECT = "aq:invocation/"

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_str(v: Any) -> bool:
    return type(v) is str


def _is_hex(v: Any) -> bool:
    return type(v) is str and _HEX64.fullmatch(v) is not None


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_opt_str(v: Any) -> bool:
    return v is None or type(v) is str


def _is_int_map(v: Any) -> bool:
    return type(v) is dict and all(type(x) is int for x in v.values())


def _is_count_map(v: Any) -> bool:
    return type(v) is dict and all(_is_int_map(x) for x in v.values())


# field -> (check, what the check wants). The order is the order of docs/lineage.md.
PREDICATE_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tenant": (_is_str, "a string"),
    "agent": (_is_str, "a string"),
    "conversation": (_is_str, "a string"),
    "invocation": (_is_str, "a string"),
    "seq": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "prev": (_is_hex, "64 lower-case hex digits"),
    "tree_size": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "model": (_is_str, "a string"),
    "model_digest": (_is_str, "a string"),
    "adapter": (_is_str, "a string"),
    "policy_name": (_is_str, "a string"),
    "policy_digest": (_is_str, "a string"),
    "key_id": (_is_hex, "64 lower-case hex digits"),
    "state_status": (lambda v: v in ("full", "partial"), "'full' or 'partial'"),
    "confidence": (lambda v: v in ("normal", "reduced"), "'normal' or 'reduced'"),
    "degraded_reason": (_is_opt_str, "a string or null"),
    "entropy_spent": (_is_int_map, "an object of integers (micro-nats per scope)"),
    "verdicts": (_is_count_map, "an object of objects of integer counts"),
    "finish_reason": (_is_str, "a string"),
    "start_us": (_is_int, "an integer (µs since the epoch)"),
    "end_us": (_is_int, "an integer (µs since the epoch)"),
}


def text_digest(text: str) -> str:
    """sha256 hex of the UTF-8 bytes of the released text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_key(tenant: str, agent: str, conversation: str) -> str:
    """The chain (conversation) key ``<tenant>:<agent>:<conversation>``."""
    return f"{tenant}:{agent}:{conversation}"


@dataclass(frozen=True)
class Statement:
    """A parsed receipt payload."""

    root: str
    text_sha256: str
    predicate: dict[str, Any]

    @property
    def chain(self) -> str:
        p = self.predicate
        return chain_key(p["tenant"], p["agent"], p["conversation"])

    @property
    def seq(self) -> int:
        return int(self.predicate["seq"])

    @property
    def prev(self) -> str:
        return str(self.predicate["prev"])

    @property
    def key_id(self) -> str:
        return str(self.predicate["key_id"])

    @property
    def end_us(self) -> int:
        return int(self.predicate["end_us"])


def check_predicate(predicate: Mapping[str, Any]) -> None:
    """Check every predicate field is present, of its type, and no other field is there.

    :raises LineageError: naming the first bad field.
    """
    missing = [name for name in PREDICATE_FIELDS if name not in predicate]
    if missing:
        raise LineageError(f"predicate is missing {', '.join(missing)}")
    extra = sorted(set(predicate) - set(PREDICATE_FIELDS))
    if extra:
        raise LineageError(f"predicate has unknown fields {', '.join(extra)}")
    for name, (check, wants) in PREDICATE_FIELDS.items():
        if not check(predicate[name]):
            raise LineageError(f"predicate field {name} must be {wants} (got {predicate[name]!r})")
    if predicate["end_us"] < predicate["start_us"]:
        raise LineageError("predicate end_us is before start_us")


def build_statement(root: str, text: str, predicate: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto v1 Statement of one invocation (checked with :func:`check_predicate`)."""
    check_predicate(predicate)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": INVOCATION_SUBJECT + predicate["invocation"], "digest": {"sha256": root}},
            {"name": TEXT_SUBJECT, "digest": {"sha256": text_digest(text)}},
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The payload: RFC 8785 canonical bytes of the statement."""
    return canonical_bytes(dict(statement))


def _subject_digest(subject: Any, name: str, index: int) -> str:
    if (
        type(subject) is not dict
        or set(subject) != {"name", "digest"}
        or subject["name"] != name
        or type(subject["digest"]) is not dict
        or set(subject["digest"]) != {"sha256"}
        or not _is_hex(subject["digest"]["sha256"])
    ):
        raise LineageError(
            f"statement subject[{index}] must be {{name: {name!r}, digest: {{sha256: <hex>}}}}"
        )
    return str(subject["digest"]["sha256"])


def parse_statement(payload: bytes) -> Statement:
    """Parse and check a receipt payload: canonical JSON, statement and predicate types, subjects
    and every predicate field.

    :raises LineageError: naming what was wrong.
    """
    obj = parse_canonical(payload)
    if type(obj) is not dict or set(obj) != {"_type", "subject", "predicateType", "predicate"}:
        raise LineageError("statement must have exactly _type, subject, predicateType, predicate")
    if obj["_type"] != STATEMENT_TYPE:
        raise LineageError(f"statement _type must be {STATEMENT_TYPE!r} (got {obj['_type']!r})")
    if obj["predicateType"] != PREDICATE_TYPE:
        raise LineageError(f"predicateType must be {PREDICATE_TYPE!r} (got {obj['predicateType']!r})")
    predicate = obj["predicate"]
    if type(predicate) is not dict:
        raise LineageError("statement predicate must be an object")
    check_predicate(predicate)
    subjects = obj["subject"]
    if type(subjects) is not list or len(subjects) != 2:
        raise LineageError("statement must have exactly two subjects (invocation root, text)")
    root = _subject_digest(subjects[0], INVOCATION_SUBJECT + predicate["invocation"], 0)
    text_sha = _subject_digest(subjects[1], TEXT_SUBJECT, 1)
    return Statement(root=root, text_sha256=text_sha, predicate=predicate)
