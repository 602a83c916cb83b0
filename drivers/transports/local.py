"""LocalTransport: run a command on this machine, as an argv (never through a shell).

The child gets ``os.environ`` plus the transport's overrides (e.g. a sim pod's ``PATH`` with
its ``nvidia-smi`` stand-in). It runs in its own process group so that a timeout can kill it and
whatever it forked (nvidia-smi, ...) by its PID; services the pod agent started live in their own
sessions and are not touched. A timeout returns exit status 124 (like coreutils ``timeout``).
Cancelling the awaiting task does not kill the command.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Mapping, Sequence

from gpumod.ports import CommandResult

TIMEOUT_RETURNCODE = 124


class LocalTransport:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env or {})

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        env = {**os.environ, **self.env}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            return CommandResult(127, b"", f"{argv[0]}: {err.strerror or err}\n".encode())
        # A cancelled task (Ctrl+C) leaves the command to finish on its own: the pod agent's
        # operations are bounded, and killing one between spawning a service and recording it
        # would leave a process nobody knows about.
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except asyncio.TimeoutError:
            await _kill(proc)
            return CommandResult(TIMEOUT_RETURNCODE, b"", f"{argv[0]}: timed out after {timeout:g} s\n".encode())
        return CommandResult(proc.returncode if proc.returncode is not None else -1, out, err)

    async def close(self) -> None:
        return None


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: pgid == its pid
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()
    await proc.wait()
