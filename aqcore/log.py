"""Loggers that import structlog (about 100 ms with its console renderer) only when something is
actually logged, so that plugin discovery and runtime start stay fast."""

from __future__ import annotations

from typing import Any


class _LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            from .logging import ensure_configured

            ensure_configured()
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    """A structlog logger for ``name``, created on first use."""
    return _LazyLogger(name)
