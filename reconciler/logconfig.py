"""structlog set-up: log lines on stderr, with the reconcile id (a context variable bound by each
apply run), pod and service bound by the callers.

Two formats. ``text`` (default): key=value lines, quiet by default; ``-v`` shows step events
(info), ``-vv`` everything; ``GPUMOD_LOG`` sets a level too. ``json`` (``--log-format json``): one
JSON object per line for a log pipeline, at info level at least so that every step event
(``step.started``, ``step.done``, ``step.failed``, ``step.skipped``) is there; warnings of the
libraries underneath (asyncssh) come out as JSON lines too.

structlog (and the rich tracebacks it loads) costs ~30-60 ms of start-up that a ``plan`` never
uses, nor an ``apply`` that logs nothing at its level: modules take their logger from
``get_logger``, a call below the level is dropped before structlog is imported, and structlog is
imported and configured on the first call that can print (at once with ``json``, whose
standard-library handler must be in place before any library logs). The reconcile id is a context
variable of this module, added to every line by a processor.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")

_settings: dict[str, Any] = {"verbosity": 0, "fmt": "text"}
_configured = False
_reconcile_id: ContextVar[str | None] = ContextVar("gpumod_reconcile_id", default=None)
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}  # calls dropped below the level


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

    level, fmt = _level(), _settings["fmt"]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_reconcile_id,
        structlog.processors.add_log_level,
    ]
    if fmt == "json":
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


def _level() -> int:
    """The level lines are printed from: ``-v`` / ``-vv``, ``GPUMOD_LOG``, info at least with json."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(_settings["verbosity"], logging.DEBUG)
    env = os.environ.get("GPUMOD_LOG", "").lower()
    if env in LEVELS:
        level = min(level, LEVELS[env])
    return min(level, logging.INFO) if _settings["fmt"] == "json" else level


def _add_reconcile_id(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    reconcile_id = _reconcile_id.get()
    if reconcile_id is not None:
        event.setdefault("reconcile_id", reconcile_id)
    return event


def _drop(*args: Any, **kw: Any) -> None:
    return None


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
    """A structlog logger imported and configured on the first call that can print
    (``log.info(...)``); ``log.bind(**kw)`` binds lazily too."""

    def __init__(self, name: str, bound: dict[str, Any] | None = None) -> None:
        self._name = name
        self._bound = bound or {}

    def bind(self, **kw: Any) -> "_Logger":
        return _Logger(self._name, {**self._bound, **kw})

    def __getattr__(self, attr: str) -> Any:
        if attr in _METHOD_LEVELS and _METHOD_LEVELS[attr] < _level():
            return _drop
        import structlog

        _configure()
        logger = structlog.get_logger(self._name)
        return getattr(logger.bind(**self._bound) if self._bound else logger, attr)


def get_logger(name: str) -> Any:
    return _Logger(name)


@contextmanager
def bound_reconcile_id(reconcile_id: str) -> Iterator[None]:
    """Bind the reconcile id to every log line of one apply run (and the tasks it starts)."""
    token = _reconcile_id.set(reconcile_id)
    try:
        yield
    finally:
        _reconcile_id.reset(token)
