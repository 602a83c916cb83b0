"""Which driver serves a service's ``driver:`` name."""

from __future__ import annotations

from gpumod.drivers.base import Driver
from gpumod.drivers.command import CommandDriver
from gpumod.drivers.docker import DockerDriver
from gpumod.drivers.llamacpp import LlamaCppDriver
from gpumod.drivers.vllm import VllmDriver
from gpumod.errors import UnsupportedError

_DRIVERS: dict[str, Driver] = {
    "vllm": VllmDriver(),
    "llamacpp": LlamaCppDriver(),
    "command": CommandDriver("command"),
    "fastapi": CommandDriver("fastapi"),
    "docker": DockerDriver(),
}


def driver_for(name: str) -> Driver:
    try:
        return _DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(_DRIVERS))
        raise UnsupportedError(
            f"driver {name!r} is not supported yet", hint=f"use one of: {known}"
        ) from None
