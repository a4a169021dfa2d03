"""aq adapter for llama.cpp: governed token-by-token decoding of GGUF models.

``LlamaCppAdapter`` and ``resolve_model`` are imported on first access, so importing this
package (as plugin discovery does) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import LlamaCppAdapter, LlamaCppOptions
    from .models import ResolvedModel, resolve_model

__all__ = ["LlamaCppAdapter", "LlamaCppOptions", "ResolvedModel", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in ("LlamaCppAdapter", "LlamaCppOptions"):
        from . import adapter

        return getattr(adapter, name)
    if name in ("ResolvedModel", "resolve_model"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'aq_llamacpp' has no attribute {name!r}")
