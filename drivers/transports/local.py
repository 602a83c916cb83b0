"""LocalTransport: run a command on this machine, as an argv (never through a shell).

The child gets ``os.environ`` plus the transport's overrides (e.g. a sim pod's ``PATH`` with
its ``nvidia-smi`` stand-in). It runs in its own process group so that a timeout can kill it and
whatever it forked (nvidia-smi, ...) by its PID; services the pod agent started live in their own
sessions and are not touched. A timeout returns exit status 124 (like coreutils ``timeout``).
Cancelling the awaiting task does not kill the command.

``open_process`` starts a long-running child with pipes (the per-pod lock holder): it ends when
its stdin reaches EOF (``close()``, or this process exiting), or is killed after a grace period.
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
        except OSError as error:
            return CommandResult(127, b"", f"{argv[0]}: {error.strerror or error}\n".encode())
        # A cancelled task (Ctrl+C) leaves the command to finish on its own: the pod agent's
        # operations are bounded, and killing one between spawning a service and recording it
        # would leave a process nobody knows about.
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except asyncio.TimeoutError:
            await _kill(proc)
            return CommandResult(TIMEOUT_RETURNCODE, b"", f"{argv[0]}: timed out after {timeout:g} s\n".encode())
        return CommandResult(proc.returncode if proc.returncode is not None else -1, out, err)

    async def open_process(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> "LocalProcess":
        """A long-running child with stdin/stdout/stderr pipes, in its own process group. A
        missing executable gives a process that already exited with 127 (as over SSH)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self.env, **(env or {})},
                start_new_session=True,
            )
        except OSError as err:
            return LocalProcess(None, failure=f"{argv[0]}: {err.strerror or err}\n".encode())
        return LocalProcess(proc)

    async def close(self) -> None:
        return None


class LocalProcess:
    """A child with pipes (``gpumod.ports.PodProcess``): text lines out, bytes in."""

    def __init__(self, proc: asyncio.subprocess.Process | None, *, failure: bytes = b"") -> None:
        self._proc = proc
        self._failure = failure
        self._stdin_closed = proc is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else 127

    async def readline(self) -> str:
        """The next line of stdout ('' at EOF)."""
        if self._proc is None or self._proc.stdout is None:
            return ""
        return (await self._proc.stdout.readline()).decode("utf-8", "replace")

    async def read_stderr(self) -> bytes:
        """Everything the process wrote on stderr (waits for its EOF)."""
        if self._proc is None or self._proc.stderr is None:
            return self._failure
        return await self._proc.stderr.read()

    def write(self, data: bytes) -> None:
        if self._stdin_closed or self._proc is None or self._proc.stdin is None:
            raise BrokenPipeError("stdin of the process is closed")
        self._proc.stdin.write(data)

    async def close(self, grace_s: float = 5.0) -> None:
        """EOF on stdin, wait up to ``grace_s`` for the exit, then kill its process group."""
        if self._proc is None:
            return
        if not self._stdin_closed and self._proc.stdin is not None:
            self._stdin_closed = True
            try:
                self._proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
        try:
            await asyncio.wait_for(self._proc.wait(), grace_s)
        except asyncio.TimeoutError:
            await _kill(self._proc)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: pgid == its pid
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()
    await proc.wait()
