"""structlog set-up: log lines on stderr, with the reconcile id (a context variable bound by each
apply run), pod and service bound by the callers.

Two formats. ``text`` (default): key=value lines, quiet by default; ``-v`` shows step events
(info), ``-vv`` everything; ``GPUMOD_LOG`` sets a level too. ``json`` (``--log-format json``): one
JSON object per line for a log pipeline, at info level at least so that every step event
(``step.started``, ``step.done``, ``step.failed``, ``step.skipped``) is there; warnings of the
libraries underneath (asyncssh) come out as JSON lines too.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")


def configure_logging(verbosity: int = 0, fmt: str = "text") -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("GPUMOD_LOG", "").lower()
    if env in LEVELS:
        level = min(level, LEVELS[env])
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if fmt == "json":
        level = min(level, logging.INFO)
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(default=str)
        _stdlib_as_json(shared, renderer)
    else:
        shared.append(structlog.processors.TimeStamper(fmt="%H:%M:%S"))
        renderer = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _stdlib_as_json(shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor) -> None:
    """Records of the standard ``logging`` module (warnings and up) as the same JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name]
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
