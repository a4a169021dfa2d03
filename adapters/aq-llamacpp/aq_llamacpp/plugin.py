"""aq's entry point for the llama.cpp adapter (group ``aq``, name ``llamacpp``).

Importing this module imports neither llama_cpp nor numpy-heavy code: discovery stays fast and
works where llama-cpp-python is missing; the factory imports the adapter when it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aqcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from .adapter import LlamaCppAdapter

__all__ = ["aq_register_adapters", "factory"]

DESCRIPTION = (
    "llama.cpp via llama-cpp-python, token granularity with zero-copy logits and KV rollback "
    "(model: smollm2, gemma3-270m or a .gguf path; options n_ctx, n_threads, n_gpu_layers, seed)"
)


def factory(model: str, **options: Any) -> LlamaCppAdapter:
    """Load ``model`` into a :class:`~aq_llamacpp.adapter.LlamaCppAdapter` with ``options``."""
    from .adapter import LlamaCppAdapter

    return LlamaCppAdapter(model, **options)


@hookimpl
def aq_register_adapters(register: Callable[..., None]) -> None:
    register("llamacpp", factory, granularity="token", description=DESCRIPTION)
