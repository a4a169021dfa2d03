"""The built-in gate metrics, registered through the same hook a third-party metric uses."""

from __future__ import annotations

from collections.abc import Callable

from ..gate import GateMetric
from ..hookspecs import hookimpl
from .commitments import Commitments
from .deny_phrases import DenyPhrases
from .entropy_budget import EntropyBudget
from .grounding import Grounding
from .pii import Pii
from .schema import Schema

BUILTIN_METRICS: tuple[type[GateMetric], ...] = (
    EntropyBudget,
    DenyPhrases,
    Pii,
    Grounding,
    Commitments,
    Schema,
)


@hookimpl
def aq_register_gate_metrics(register: Callable[..., None]) -> None:
    """Register entropy_budget, deny_phrases, pii, grounding, commitments and schema."""
    for metric in BUILTIN_METRICS:
        register(metric)
