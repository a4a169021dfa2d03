"""aq's built-in gate metrics, one module each. They register through
:func:`aqcore.gates.builtin.aq_register_gate_metrics`, like any third-party metric."""

from .commitments import Commitments
from .deny_phrases import DenyPhrases
from .entropy_budget import EntropyBudget
from .grounding import Grounding
from .pii import Pii
from .schema import Schema

__all__ = ["Commitments", "DenyPhrases", "EntropyBudget", "Grounding", "Pii", "Schema"]
