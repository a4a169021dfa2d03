"""aq's hook specifications. Plugins implement them with ``@aqcore.hookimpl``.

Registration hooks receive a ``register`` callback (the simonw/llm style). Lifecycle hooks are
called by the runtime at the four moments of the design: state load, gate evaluation, emission
and lineage record. Every hook here is documented in docs/hooks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .gate import GateContext, Step
    from .models import Emission, GenerationResult, Scope, Verdict
    from .state.session import LoadedState

hookspec = pluggy.HookspecMarker("aq")
hookimpl = pluggy.HookimplMarker("aq")

__all__ = [
    "aq_emit",
    "aq_gate_evaluate",
    "aq_lineage_record",
    "aq_register_adapters",
    "aq_register_gate_metrics",
    "aq_register_lineage_stores",
    "aq_register_state_backends",
    "aq_state_load",
    "hookimpl",
    "hookspec",
]


@hookspec
def aq_register_adapters(register: Callable[..., None]) -> None:
    """Register model adapters.

    :param register: call ``register(name, factory, granularity="token"|"unit",
        description="")``; ``factory(model: str, **options)`` returns a
        :class:`aqcore.adapters.TokenAdapter` or :class:`aqcore.adapters.UnitAdapter` and is
        only called when the adapter is used (import heavy libraries inside it).
    """


@hookspec
def aq_register_state_backends(register: Callable[..., None]) -> None:
    """Register state backends by URL scheme.

    :param register: call ``register(scheme, factory, description="")``;
        ``factory(url: str)`` returns a :class:`aqcore.state.backend.StateBackend`.
    """


@hookspec
def aq_register_gate_metrics(register: Callable[..., None]) -> None:
    """Register gate metrics.

    :param register: call ``register(metric_class)`` with a subclass of
        :class:`aqcore.gate.GateMetric`; its ``name`` is the ``[metrics.<name>]`` table of a
        policy and its ``Settings`` model validates that table.
    """


@hookspec
def aq_register_lineage_stores(register: Callable[..., None]) -> None:
    """Register lineage stores by URL scheme.

    :param register: call ``register(scheme, factory, description="")``;
        ``factory(url: str)`` returns a :class:`aqcore.lineage.store.LineageStore`.
    """


@hookspec
def aq_state_load(scope: Scope, state: LoadedState) -> None:
    """Called once an invocation's semantic state is loaded, before the first step.

    :param scope: the invocation's scope.
    :param state: the loaded agent and conversation state, with ``status`` ("full" or
        "partial") and ``degraded_reason``. Implementations may add sources (``state.sources``)
        for this invocation; they must not clear the degraded flag.
    """


@hookspec
def aq_gate_evaluate(step: Step, context: GateContext) -> Verdict | None:
    """Judge one step, in addition to the policy's metrics. Called for every candidate token
    (or unit) only when at least one plugin implements it.

    :param step: the candidate under judgement (text so far, candidate, released offset).
    :param context: what the invocation is bound to (policy, scope, state).
    :return: a :class:`aqcore.models.Verdict`, or None to admit.
    """


@hookspec
def aq_emit(emission: Emission, scope: Scope) -> None:
    """Called for every piece of text released to the consumer, in order.

    :param emission: the released text with its offset, ``state_status`` and ``confidence``.
    :param scope: the invocation's scope.
    """


@hookspec
def aq_lineage_record(result: GenerationResult, receipt: dict[str, Any] | None) -> None:
    """Called when an invocation ends and its receipt has been sealed and stored.

    :param result: the invocation's result.
    :param receipt: the receipt summary (id, root, seq, prev), or None where no lineage is kept.
    """
