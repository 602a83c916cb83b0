"""structlog set-up: key=value lines on stderr, quiet by default, with reconcile id / pod / service bound
by the callers. ``-v`` shows step events (info), ``-vv`` everything; ``GPUMOD_LOG`` sets a level too.

structlog (and the rich tracebacks it loads) costs ~30 ms of start-up that a ``plan`` never uses:
modules take their logger from ``get_logger``, and structlog is imported and configured on the
first call of a logger method."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

_settings: dict[str, Any] = {"verbosity": 0}
_configured = False

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(verbosity: int = 0) -> None:
    """Remember the settings; applied when something first logs (or now, if something already did)."""
    global _configured
    _settings.update(verbosity=verbosity)
    if _configured:
        _configured = False
        _configure()


def _configure() -> None:
    global _configured
    if _configured:
        return
    _configured = True
    import structlog

    verbosity = _settings["verbosity"]
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("GPUMOD_LOG", "").lower()
    if env in LEVELS:
        level = min(level, LEVELS[env])
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"], drop_missing=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


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
