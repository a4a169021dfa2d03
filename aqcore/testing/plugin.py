"""Registers the test language model as the adapters ``test`` (tokens) and ``test-units``
(text units). Building the model happens in the factories, never at import or discovery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AdapterError
from ..hookspecs import hookimpl

ACCEPTED_MODELS = '"default" (the bundled corpus) or the path of a UTF-8 .txt file to estimate from'


def _load(adapter: str, model: str, options: dict[str, Any]) -> tuple[Any, str]:
    """The n-gram model named by ``model`` and its model name."""
    from .ngram import default_model, model_for_text

    if options:
        raise AdapterError(f"adapter {adapter!r} takes no options (got {', '.join(sorted(options))})")
    if model == "default":
        return default_model(), "aq-test-ngram"
    path = Path(model)
    if path.suffix.lower() != ".txt":
        raise AdapterError(f"adapter {adapter!r}: unknown model {model!r}; expected {ACCEPTED_MODELS}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdapterError(f"adapter {adapter!r}: model file {model!r} does not exist") from None
    except UnicodeDecodeError as exc:
        where = f"adapter {adapter!r}: model file {model!r}"
        raise AdapterError(f"{where} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise AdapterError(f"adapter {adapter!r}: cannot read model file {model!r}: {exc.strerror}") from None
    try:
        return model_for_text(text), path.name
    except ValueError as exc:
        raise AdapterError(f"adapter {adapter!r}: cannot estimate a model from {model!r}: {exc}") from None


def token_factory(model: str = "default", **options: Any) -> Any:
    """The ``test`` adapter: an :class:`~aqcore.testing.adapters.NgramAdapter`."""
    from .adapters import NgramAdapter

    lm, name = _load("test", model, options)
    return NgramAdapter(lm, model_name=name)


def unit_factory(model: str = "default", **options: Any) -> Any:
    """The ``test-units`` adapter: an :class:`~aqcore.testing.adapters.NgramUnitAdapter`."""
    from .adapters import NgramUnitAdapter

    lm, name = _load("test-units", model, options)
    return NgramUnitAdapter(lm, model_name=name)


@hookimpl
def aq_register_adapters(register: Callable[..., None]) -> None:
    register(
        "test",
        token_factory,
        granularity="token",
        description="tiny trigram LM over sub-word tokens, for tests and demos (model: default or a .txt)",
    )
    register(
        "test-units",
        unit_factory,
        granularity="unit",
        description="the test LM as a text-only stream, like a closed chat API (model: default or a .txt)",
    )
