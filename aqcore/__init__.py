"""aq: an inference-control runtime. Every token passes an admissibility gate evaluated
against persistent semantic state, and every generation leaves a signed lineage receipt.

Names are imported on first use, so that plugin discovery and ``aq`` start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "generate": "aqcore.enroll",
    "inference_control": "aqcore.enroll",
    "AqError": "aqcore.errors",
    "PluginError": "aqcore.errors",
    "PolicyError": "aqcore.errors",
    "StateUnavailable": "aqcore.errors",
    "UsageError": "aqcore.errors",
    "GateContext": "aqcore.gate",
    "GateMetric": "aqcore.gate",
    "Mask": "aqcore.gate",
    "MetricSettings": "aqcore.gate",
    "Step": "aqcore.gate",
    "hookimpl": "aqcore.hookspecs",
    "Commitment": "aqcore.models",
    "Emission": "aqcore.models",
    "GenerationResult": "aqcore.models",
    "Message": "aqcore.models",
    "Observation": "aqcore.models",
    "Scope": "aqcore.models",
    "Verdict": "aqcore.models",
    "VerdictKind": "aqcore.models",
    "get_plugin_manager": "aqcore.plugins",
    "Policy": "aqcore.policy",
    "load_policy": "aqcore.policy",
    "Runtime": "aqcore.runtime",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .enroll import generate, inference_control
    from .errors import AqError, PluginError, PolicyError, StateUnavailable, UsageError
    from .gate import GateContext, GateMetric, Mask, MetricSettings, Step
    from .hookspecs import hookimpl
    from .models import Commitment, Emission, GenerationResult, Message, Observation, Scope, Verdict, VerdictKind
    from .plugins import get_plugin_manager
    from .policy import Policy, load_policy
    from .runtime import Runtime


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aqcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
