"""Leaf records: one canonical JSON object per observation or lifecycle event of an invocation.

A leaf's hash is ``sha256(0x00 ‖ canonical bytes)`` (RFC 9162 §2.1.1). Records hold integers
only: timestamps in microseconds, log-probabilities, surprisal and entropy in micro-nats
(parts per million of a nat). docs/lineage.md lists the fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .canonical import canonical_bytes, fast_canonical, reject_floats

if TYPE_CHECKING:
    from ..models import Observation

LEAF_PREFIX = b"\x00"

# Lifecycle events an invocation records besides its observations.
EVENTS = frozenset(
    {"start", "state_load", "degraded", "reject", "rollback", "redact", "halt", "refusal", "finish"}
)


def micro(value: float | None) -> int | None:
    """A float in natural units as an integer count of millionths (None stays None)."""
    return None if value is None else round(value * 1_000_000)


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 9162 leaf hash of canonical record bytes: ``sha256(0x00 ‖ bytes)`` (32 raw bytes)."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def leaf_bytes(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a leaf record, refusing floats and other non-integer numbers.

    :raises aqcore.errors.LineageError: naming the offending field.
    """
    if type(record) is not dict:
        record = dict(record)
    fast = fast_canonical(record)
    if fast is not None:
        return fast
    reject_floats(record)
    return canonical_bytes(record)


def observation_record(
    index: int,
    text: str,
    *,
    t_us: int,
    token_id: int | None = None,
    logprob: float | None = None,
    surprisal: float = 0.0,
    entropy: float | None = None,
    verdicts: Iterable[str] = (),
) -> dict[str, Any]:
    """The leaf record of one committed token or unit.

    :param verdicts: ``"<metric>:<kind>"`` strings of the non-admit verdicts of the step.
    """
    return {
        "kind": "observation",
        "i": index,
        "tok": token_id,
        "text": text,
        "lp_un": micro(logprob),
        "s_un": micro(surprisal),
        "h_un": micro(entropy),
        "v": list(verdicts),
        "t_us": t_us,
    }


def record_from_observation(obs: Observation, t_us: int) -> dict[str, Any]:
    """The leaf record of an :class:`aqcore.models.Observation`."""
    verdicts = [f"{v.metric}:{v.kind.value}" for v in obs.verdicts if v.kind.value != "admit"]
    return observation_record(
        obs.index,
        obs.text,
        t_us=t_us,
        token_id=obs.token_id,
        logprob=obs.logprob,
        surprisal=obs.surprisal,
        entropy=obs.entropy,
        verdicts=verdicts,
    )


def event_record(event: str, *, t_us: int, **fields: int | str | bool | None) -> dict[str, Any]:
    """The leaf record of a lifecycle event (``start``, ``degraded``, ``rollback``, ...).

    Extra ``fields`` are integers, strings, booleans or null.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown lineage event {event!r}; expected one of {sorted(EVENTS)}")
    record: dict[str, Any] = {"kind": "event", "event": event, "t_us": t_us}
    for key in ("kind", "event", "t_us"):
        if key in fields:
            raise ValueError(f"event field {key!r} is reserved")
    record.update(fields)
    return record
