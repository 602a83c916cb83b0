"""The seams between the engine and the world: Transport and Clock.

Everything that touches a machine goes through a ``Transport`` (``drivers/transports/``: a local
subprocess, or asyncssh for SSH pods); everything that waits goes through a ``Clock``. The real
ones come from ``gpumod.wiring`` (``SystemClock`` here); unit tests use small fakes
(``drivers/transports/fake.py``, or a clock that only advances a number).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class PodProcess(Protocol):
    """A long-running command on a pod (e.g. the lock holder): line-oriented stdout, stdin open
    until ``close()`` (EOF)."""

    @property
    def returncode(self) -> int | None: ...

    async def readline(self) -> str: ...

    async def read_stderr(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """Runs one command on a pod. ``argv`` is quoted by the transport; ``stdin`` carries payloads
    (and secrets: never put a secret in ``argv``)."""

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult: ...

    async def open_process(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> PodProcess: ...

    async def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
