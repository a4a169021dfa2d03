"""One-annotation enrollment: ``@inference_control("support-agent")`` puts every generation
made inside the decorated function under aq's governance, as that agent."""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .errors import UsageError
from .models import Emission, GenerationResult, Message
from .runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Enrollment:
    runtime: Runtime
    agent: str
    tenant: str | None


_current: contextvars.ContextVar[Enrollment | None] = contextvars.ContextVar("aq_enrollment", default=None)


def inference_control(
    agent: str,
    *,
    config: str | Path | None = None,
    runtime: Runtime | None = None,
    tenant: str | None = None,
    **runtime_kwargs: Any,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Enroll a function: inside it, :func:`generate` runs governed as ``agent``.

    The runtime is ``runtime``, or one built on first call from ``runtime_kwargs`` (e.g.
    ``policy=...``, ``adapter=...``) or from ``config`` / ``aq.toml``, then reused.
    """
    lock = threading.Lock()
    built: list[Runtime] = []

    def resolve() -> Runtime:
        if runtime is not None:
            return runtime
        with lock:
            if not built:
                built.append(Runtime(**runtime_kwargs) if runtime_kwargs else Runtime.from_config(config))
            return built[0]

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                # the enrollment must hold while the coroutine runs, not while it is created
                token = _current.set(Enrollment(resolve(), agent, tenant))
                try:
                    return await fn(*args, **kwargs)  # type: ignore[misc]
                finally:
                    _current.reset(token)

            async_wrapper.__aq_agent__ = agent  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _current.set(Enrollment(resolve(), agent, tenant))
            try:
                return fn(*args, **kwargs)
            finally:
                _current.reset(token)

        wrapper.__aq_agent__ = agent  # type: ignore[attr-defined]
        return wrapper

    return decorate


def generate(
    prompt: str | Sequence[Message | dict[str, str]], *, conversation: str, **options: Any
) -> GenerationResult | Iterator[Emission]:
    """Generate inside an ``@inference_control`` function, as its agent."""
    enrollment = _current.get()
    if enrollment is None:
        raise UsageError("aqcore.generate() called outside a function decorated with @inference_control(...)")
    options.setdefault("tenant", enrollment.tenant)
    return enrollment.runtime.generate(prompt, agent=enrollment.agent, conversation=conversation, **options)
