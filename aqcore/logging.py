"""structlog set-up for the CLI: JSON lines when stdout is not a terminal, readable otherwise;
always on stderr so that ``--json`` output on stdout stays machine-readable."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(verbosity: int = 0) -> None:
    level = logging.WARNING - 10 * verbosity
    renderer: structlog.types.Processor
    if sys.stdout.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(max(level, logging.DEBUG)),
        # looked up at each call: tests and embedders may swap sys.stderr
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


def ensure_configured() -> None:
    """Library default: warnings and errors on stderr, unless the application configured
    structlog itself."""
    if not structlog.is_configured():
        configure(0)
