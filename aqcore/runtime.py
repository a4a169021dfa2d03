"""The Runtime: binds an adapter, a policy, a state store and lineage, and runs governed
generations (``Runtime.generate``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapters import TokenAdapter, UnitAdapter, UnitRequest
from .config import RuntimeConfig, load_config
from .errors import AdapterError, AqError, UsageError
from .gate import GateContext, GateMetric, Step
from .log import get_logger
from .loop.judge import Judge
from .loop.outcome import LoopEvent, LoopOutcome
from .loop.release import ReleaseBuffer
from .loop.units import UnitLoop
from .models import Commitment, Emission, GenerationResult, Message, Scope, Turn, Verdict
from .params import SamplingParams
from .plugins import AqPluginManager, get_plugin_manager
from .policy import Policy, load_policy
from .state.journal import Journal, default_journal_dir
from .state.keys import agent_key, conversation_key
from .state.session import LoadedState, StateManager
from .state.update import StateUpdate
from .urls import mask_url, store_identity

if TYPE_CHECKING:
    from .loop.tokens import TokenLoop

log = get_logger("aq.runtime")

HISTORY_TURNS = 8


class Runtime:
    """One configured aq runtime. Build it from keyword arguments or ``Runtime.from_config``."""

    def __init__(
        self,
        *,
        adapter: str | TokenAdapter | UnitAdapter = "test",
        model: str = "default",
        policy: str | Path | Policy,
        store: str = "memory:",
        lineage: str | None = None,
        key: str | Path | None = None,
        keyring: str | Path | None = None,
        leaves: str | Path | None = None,
        journal: str | Path | None = None,
        tenant: str = "default",
        adapter_options: dict[str, Any] | None = None,
        state_timeout_s: float | None = None,
        plugin_manager: AqPluginManager | None = None,
    ) -> None:
        self.plugins = plugin_manager or get_plugin_manager()
        self.metric_classes: dict[str, type[GateMetric]] = self.plugins.metric_classes()
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy, self.metric_classes)
        self._degraded_policy: Policy | None = None
        # an adapter object (e.g. a test double or one built by hand) is used as it is
        self._adapter: TokenAdapter | UnitAdapter | None = None if isinstance(adapter, str) else adapter
        self.adapter_name = adapter if isinstance(adapter, str) else adapter.name
        self.model = model if isinstance(adapter, str) else adapter.model_name
        self.adapter_options = dict(adapter_options or {})
        self.tenant = tenant
        self.scope("_", "_")  # a bad tenant id fails here, not at the first generate
        self.store_url = store
        self.store_display = mask_url(store)
        backend = self.plugins.open_state_backend(store)
        journal_dir = Path(journal) if journal else default_journal_dir()
        self.state = StateManager(
            backend,
            Journal(journal_dir, store),
            timeout_s=state_timeout_s if state_timeout_s is not None else self.policy.state.timeout_s,
            max_retries=self.policy.state.max_retries,
        )
        self.lineage = None
        if lineage:
            from .lineage.writer import LineageWriter

            digest = hashlib.sha256(store_identity(lineage).encode()).hexdigest()[:16]
            pending = journal_dir / "receipts" / digest
            self.lineage = LineageWriter.open(
                self.plugins, lineage, key=key, keyring=keyring, pending_dir=pending, leaves_dir=leaves
            )

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> Runtime:
        """Build a runtime from an ``aq.toml`` file; keyword arguments override its values."""
        config: RuntimeConfig = load_config(path)
        values = config.runtime_kwargs()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    # -- parts --------------------------------------------------------------------------
    @property
    def adapter(self) -> TokenAdapter | UnitAdapter:
        """The model adapter, loaded on first use."""
        if self._adapter is None:
            self._adapter = self.plugins.make_adapter(self.adapter_name, self.model, **self.adapter_options)
        return self._adapter

    def policy_for(self, state: LoadedState) -> Policy:
        if not state.degraded:
            return self.policy
        if self._degraded_policy is None:
            self._degraded_policy = self.policy.degraded_policy(self.metric_classes)
        return self._degraded_policy

    def scope(self, agent: str, conversation: str, tenant: str | None = None) -> Scope:
        """A validated scope; bad ids are a UsageError naming the field."""
        try:
            return Scope(tenant=tenant or self.tenant, agent=agent, conversation=conversation)
        except ValueError as exc:
            raise UsageError(_first_error(exc)) from None

    def load_state(self, agent: str, conversation: str, tenant: str | None = None) -> LoadedState:
        return self.state.load(self.scope(agent, conversation, tenant))

    # -- generation ---------------------------------------------------------------------
    def generate(
        self,
        prompt: str | Sequence[Message | dict[str, str]],
        *,
        agent: str,
        conversation: str,
        tenant: str | None = None,
        sources: Sequence[str] = (),
        stream: bool = False,
        seed: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_tokens: int | None = None,
        system: str | None = None,
        on_event: Callable[[LoopEvent], None] | None = None,
    ) -> GenerationResult | Iterator[Emission]:
        """Run one governed generation. With ``stream=True`` returns an iterator of emissions
        whose ``result`` attribute holds the GenerationResult once it is exhausted.

        A string ``prompt`` is sent after the conversation's recent turns (from state) and the
        ``system`` message; a list of messages is sent as it is. ``on_event`` is called with
        every gate intervention (rollback, reject, redact, halt, refusal) as it happens."""
        scope = self.scope(agent, conversation, tenant)
        try:
            params = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if max_tokens is not None and max_tokens <= 0:
            raise UsageError(f"max_tokens must be positive (got {max_tokens})")
        run = _Invocation(self, scope, prompt, list(sources), params, max_tokens, system, on_event)
        if stream:
            return _Stream(run.emissions())
        for _ in run.emissions():
            pass
        assert run.result is not None
        return run.result

    def close(self) -> None:
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None
        self.state.close()
        if self.lineage is not None:
            self.lineage.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg'].removeprefix('Value error, ')}"
    return str(exc)


class _Stream:
    """An iterator of emissions; ``result`` is set when it is exhausted."""

    def __init__(self, gen: Generator[Emission, None, GenerationResult]) -> None:
        self._gen = gen
        self.result: GenerationResult | None = None

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Emission:
        try:
            return next(self._gen)
        except StopIteration as stop:
            self.result = stop.value
            raise


def _messages(
    prompt: str | Sequence[Message | dict[str, str]], state: LoadedState, system: str | None
) -> tuple[list[Message], str]:
    if isinstance(prompt, str):
        history: list[Message] = [Message(role="system", content=system)] if system else []
        for turn in state.conversation.turns[-HISTORY_TURNS:]:
            history.append(Message(role="user", content=turn.prompt))
            history.append(Message(role="assistant", content=turn.text))
        return [*history, Message(role="user", content=prompt)], prompt
    try:
        messages = [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]
    except ValueError as exc:
        raise UsageError(f"messages must have role (system|user|assistant) and content: {exc}") from None
    if not messages:
        raise UsageError("messages must not be empty")
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return messages, last_user


def _cut_short(loop: TokenLoop | UnitLoop, reason: str) -> LoopOutcome:
    """The outcome of a generation that ended early: exactly what was released so far."""
    return LoopOutcome(
        text=loop.out.output,
        finish_reason=reason,
        observations=list(loop.observations),
        emissions=list(loop.out.emissions),
        events=list(loop.events),
        verdicts=loop.judge.counts_by_metric(),
        rollbacks=getattr(loop, "rollbacks", 0) or getattr(loop, "rerequests", 0),
        steps=loop.steps,
    )


class _Invocation:
    """One generate() call, from state load to receipt."""

    def __init__(self, runtime: Runtime, scope: Scope, prompt: Any, sources: list[str],
                 params: SamplingParams, max_tokens: int | None, system: str | None,
                 on_event: Callable[[LoopEvent], None] | None) -> None:
        self.rt = runtime
        self.system = system
        self.on_event = on_event
        self.scope = scope
        self.prompt = prompt
        self.sources = sources
        self.params = params
        self.max_tokens = max_tokens
        self.result: GenerationResult | None = None

    def emissions(self) -> Generator[Emission, None, GenerationResult]:
        rt = self.rt
        started_us = time.time_ns() // 1000
        state = rt.state.load(self.scope)
        rt.plugins.hook.aq_state_load(scope=self.scope, state=state)
        policy = rt.policy_for(state)
        messages, prompt_text = _messages(self.prompt, state, self.system)
        adapter = rt.adapter
        if state.degraded and policy.degraded.on_state_unavailable == "fail_closed":
            outcome = LoopOutcome("", "state_unavailable", [], [], [], {}, 0, 0)
            return self._finish(state, policy, outcome, [], started_us, prompt_text)
        params = self.params
        cap = policy.temperature_cap(state.degraded)
        if cap is not None and params.temperature > cap:
            params = SamplingParams(cap, params.top_k, params.top_p, params.seed)
        sources = [*state.conversation.sources, *state.sources, *self.sources]
        context = GateContext(
            policy=policy,
            scope=self.scope,
            agent_state=state.agent,
            conversation_state=state.conversation,
            sources=sources,
            vocab=getattr(adapter, "vocab", None),
            granularity=adapter.granularity,
            temperature=params.temperature,
            degraded=state.degraded,
            prompt=prompt_text,
        )
        metrics = [rt.metric_classes[name](settings, context) for name, settings in policy.metrics.items()]
        judge = Judge(metrics, context, self._plugin_gate())
        emit_hook = rt.plugins.hook.aq_emit if rt.plugins.has_impls("aq_emit") else None
        release = ReleaseBuffer(
            state_status=state.status,
            confidence="reduced" if state.degraded else "normal",
            on_emit=(lambda e: emit_hook(emission=e, scope=self.scope)) if emit_hook else None,
        )
        max_tokens = min(self.max_tokens or policy.max_tokens, policy.max_tokens)
        if adapter.granularity == "token":
            # numpy comes with these: a runtime on a unit (closed-API) adapter never imports it
            from .loop.tokens import TokenLoop
            from .sampling import Sampler

            loop: TokenLoop | UnitLoop = TokenLoop(
                adapter, judge, context, Sampler(params), release,  # type: ignore[arg-type]
                max_tokens=max_tokens, max_rollbacks=policy.max_rollbacks,
                max_resamples=policy.max_resamples, refusal=policy.refusal,
            )
        else:
            request = UnitRequest(messages, seed=params.seed, temperature=params.temperature, max_tokens=max_tokens)
            loop = UnitLoop(
                adapter, judge, context, release, request,  # type: ignore[arg-type]
                unit_size=policy.units.size, max_rerequests=policy.units.max_rerequests, refusal=policy.refusal,
            )
        loop.on_event = self.on_event
        try:
            outcome = yield from loop.run(messages)
        except GeneratorExit:
            # the consumer stopped reading: what it was given still gets a turn and a receipt
            self._finish(state, policy, _cut_short(loop, "cancelled"), [], started_us, prompt_text)
            raise
        except Exception as exc:
            error: AqError = exc if isinstance(exc, AqError) else AdapterError(
                f"adapter {rt.adapter_name!r} failed during generation: {type(exc).__name__}: {exc}"
            )
            result = self._finish(state, policy, _cut_short(loop, "error"), [], started_us, prompt_text)
            error.result = result  # type: ignore[attr-defined]
            if error is exc:
                raise
            raise error from exc
        commitments = [c for m in metrics for c in m.commitments()]
        return self._finish(state, policy, outcome, commitments, started_us, prompt_text)

    def _plugin_gate(self):  # type: ignore[no-untyped-def]
        plugins = self.rt.plugins
        if not plugins.has_impls("aq_gate_evaluate"):
            return None
        hook = plugins.hook.aq_gate_evaluate

        def gate(step: Step, context: GateContext) -> list[Verdict | None]:
            return hook(step=step, context=context)

        return gate

    def _finish(self, state: LoadedState, policy: Policy, outcome: LoopOutcome,
                commitments: list[Commitment], started_us: int, prompt_text: str) -> GenerationResult:
        rt = self.rt
        spent = sum(o.surprisal for o in outcome.observations)
        turn = Turn(
            invocation=self.scope.invocation, prompt=prompt_text, text=outcome.text,
            finish_reason=outcome.finish_reason, state_status=state.status,
        )
        updates = [
            StateUpdate(
                key=conversation_key(self.scope), entropy=spent, turn=turn, sources=self.sources,
                commitments=[c for c in commitments if c.scope == "conversation"],
            ),
            StateUpdate(
                key=agent_key(self.scope), entropy=spent,
                commitments=[c for c in commitments if c.scope == "agent"],
            ),
        ]
        commit = rt.state.commit(updates)
        partial = state.degraded or not commit.committed
        adapter = rt._adapter
        result = GenerationResult(
            text=outcome.text,
            finish_reason=outcome.finish_reason,
            scope=self.scope,
            state_status="partial" if partial else "full",
            confidence="reduced" if partial else "normal",
            degraded_reason=state.degraded_reason or commit.reason,
            state_committed=commit.committed,
            tokens=len(outcome.observations),
            rollbacks=outcome.rollbacks,
            verdicts=outcome.verdicts,
            entropy_spent={
                "invocation": spent,
                "conversation": state.conversation.entropy_spent + spent,
                "agent": state.agent.entropy_spent + spent,
            },
            observations=outcome.observations,
            emissions=outcome.emissions,
            commitments=commitments,
            model=getattr(adapter, "model_name", rt.model),
            model_digest=getattr(adapter, "model_digest", ""),
            adapter=rt.adapter_name,
            policy_name=policy.name,
            policy_digest=policy.digest,
        )
        receipt = None
        if rt.lineage is not None:
            receipt = rt.lineage.record(result, outcome.events, started_us=started_us)
            result.receipt = receipt
        rt.plugins.hook.aq_lineage_record(result=result, receipt=receipt)
        self.result = result
        log.info(
            "invocation finished", scope=self.scope.conversation_key, invocation=self.scope.invocation,
            finish_reason=result.finish_reason, tokens=result.tokens, state_status=result.state_status,
        )
        return result
