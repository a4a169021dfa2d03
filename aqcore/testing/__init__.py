"""A tiny but real language model and scripted adapters, for testing aq without a neural model.

``NgramLM`` is a trigram model over a sub-word vocabulary estimated from a text (by default the
bundled corpus of customer-support replies); ``NgramAdapter`` and ``NgramUnitAdapter`` put it
behind the token and unit adapter protocols (adapter names ``test`` and ``test-units``).
``ScriptedAdapter`` and ``ScriptedUnitAdapter`` let a test fix every logit or text chunk and
record what the loop did.

Names are imported on first use, so plugin discovery (which imports ``aqcore.testing.plugin``)
does not load numpy or build anything.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters import NgramAdapter, NgramUnitAdapter
    from .base import chat_prompt
    from .ngram import NgramLM, NgramParams, bundled_text, default_model, model_for_text
    from .scripted import ScriptedAdapter, ScriptedUnitAdapter
    from .tokenizer import EOS_ID, EOS_PIECE, Tokenizer

_WHERE = {
    "EOS_ID": "tokenizer",
    "EOS_PIECE": "tokenizer",
    "NgramAdapter": "adapters",
    "NgramLM": "ngram",
    "NgramParams": "ngram",
    "NgramUnitAdapter": "adapters",
    "ScriptedAdapter": "scripted",
    "ScriptedUnitAdapter": "scripted",
    "Tokenizer": "tokenizer",
    "bundled_text": "ngram",
    "chat_prompt": "base",
    "default_model": "ngram",
    "model_for_text": "ngram",
}

__all__ = [
    "EOS_ID",
    "EOS_PIECE",
    "NgramAdapter",
    "NgramLM",
    "NgramParams",
    "NgramUnitAdapter",
    "ScriptedAdapter",
    "ScriptedUnitAdapter",
    "Tokenizer",
    "bundled_text",
    "chat_prompt",
    "default_model",
    "model_for_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
