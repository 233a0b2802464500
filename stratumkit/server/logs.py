"""structlog, configured once: JSON lines for machines, a console renderer for humans.

Context variables are merged first, so a connection task binds its peer and worker once
(`structlog.contextvars.bind_contextvars`) and every line it logs carries them.
"""

from __future__ import annotations

import logging
import sys

import structlog

#: The levels a log_level / --log-level may name.
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """`level` is one of LOG_LEVELS (the caller checked it: the config, or the flag's choices)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
