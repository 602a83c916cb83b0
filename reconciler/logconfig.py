"""structlog set-up: log lines on stderr, with the reconcile id (a context variable bound by each
apply run), pod and service bound by the callers.

Two formats. ``text`` (default): key=value lines, quiet by default; ``-v`` shows step events
(info), ``-vv`` everything; ``GPUMOD_LOG`` sets a level too. ``json`` (``--log-format json``): one
JSON object per line for a log pipeline, at info level at least so that every step event
(``step.started``, ``step.done``, ``step.failed``, ``step.skipped``) is there; warnings of the
libraries underneath (asyncssh) come out as JSON lines too.

structlog (and the rich tracebacks it loads) costs ~30 ms of start-up that a ``plan`` never uses:
modules take their logger from ``get_logger``, and structlog is imported and configured on the
first call of a logger method (at once with ``json``, whose standard-library handler must be in
place before any library logs).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")

_settings: dict[str, Any] = {"verbosity": 0, "fmt": "text"}
_configured = False


def configure_logging(verbosity: int = 0, fmt: str = "text") -> None:
    """Remember the settings; applied when something first logs (now, with ``json``, or if
    something already logged)."""
    global _configured
    _settings.update(verbosity=verbosity, fmt=fmt)
    if _configured or fmt == "json":
        _configured = False
        _configure()


# warnings whose content the console prints anyway (`… FAILED (0.1s) — why`, `skipped`, the recap)
CONSOLE_EVENTS = frozenset({"step.failed", "step.skipped", "service.failed_start"})


def _drop_console_events(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    import structlog

    if event.get("event") in CONSOLE_EVENTS:
        raise structlog.DropEvent
    return event


def _configure() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    import structlog

    verbosity, fmt = _settings["verbosity"], _settings["fmt"]
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("GPUMOD_LOG", "").lower()
    if env in LEVELS:
        level = min(level, LEVELS[env])
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if fmt == "json":
        level = min(level, logging.INFO)
        shared.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
        renderer: Any = structlog.processors.JSONRenderer(default=str)
        _stdlib_as_json(shared, renderer)
    else:
        if level > logging.INFO:  # quiet: the console already printed these steps as they ended
            shared.append(_drop_console_events)
        shared.append(structlog.processors.TimeStamper(fmt="%H:%M:%S"))
        renderer = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _stdlib_as_json(shared: list[Any], renderer: Any) -> None:
    """Records of the standard ``logging`` module (warnings and up) as the same JSON lines."""
    import structlog

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name]
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)


class _Logger:
    """A structlog logger imported and configured on first use (``log.info(...)``, ``log.bind``)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import structlog

        _configure()
        return getattr(structlog.get_logger(self._name), attr)


def get_logger(name: str) -> Any:
    return _Logger(name)


def bound_reconcile_id(reconcile_id: str) -> Any:
    """A context manager binding the reconcile id to every log line of one apply run."""
    import structlog

    return structlog.contextvars.bound_contextvars(reconcile_id=reconcile_id)
