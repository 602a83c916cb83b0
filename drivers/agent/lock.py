"""The per-pod lock: held ON the pod for as long as one gpumod run works on it.

Why: two ``gpumod apply`` runs (two terminals, two laptops) on one pod would interleave steps.
The pod is the only place both can see, so the lock is an ``flock`` taken there by a small
stdlib-only holder (``lockholder.py``) that stays alive on one long-running transport process
(one SSH channel for the whole run). When gpumod releases the lock, exits or loses its
connection, the holder sees EOF on stdin and exits, and the kernel frees the flock: a crashed run
never leaves the pod locked. The operation it had under way on the pod goes on without it, so a
new holder first waits (up to ``DRAIN_S``) for the pod's running operations to end. A holder left behind by a half-open
connection is broken with ``gpumod unlock POD`` (``break_pod_lock``), which only kills a pid whose start time matches.

The request framing reuses the pod agent's (script + ``MARKER`` + JSON payload), preceded by
its length on one line so that the holder can keep reading stdin after it.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from gpumod.drivers.agent import MARKER
from gpumod.errors import PodError
from gpumod.ports import Transport

__all__ = [
    "LOCK_BOOT", "PodLock", "PodLockedError", "acquire_pod_lock", "break_pod_lock", "lock_request",
    "owner_info", "describe_owner", "peek_pod_lock", "unlock_command",
]

LOCK_BOOT = (
    "import sys,json;r=sys.stdin.buffer;n=int(r.readline());d=r.read(n);"
    f"s,_,p=d.partition({MARKER!r});"
    "exec(compile(s,'gpumod-lockholder','exec'),{'__name__':'__gpumod_agent__','PAYLOAD':json.loads(p)})"
)
_SCRIPT_PATH = Path(__file__).with_name("lockholder.py")
_START_GRACE_S = 30.0  # python start-up on the pod, on top of wait_s
DRAIN_S = 60.0  # how long a new run waits for the operations a killed run left running on the pod




class PodLockedError(PodError):
    """The pod is locked by another gpumod run; ``owner`` is what its holder recorded. ``specs``
    (the spec directory of this run) makes the suggested ``gpumod unlock`` runnable as printed."""

    def __init__(self, pod: str, owner: Mapping[str, Any] | None, *, specs: str = "") -> None:
        self.owner = dict(owner or {})
        super().__init__(
            pod,
            f"locked by {describe_owner(self.owner)}; wait, or `{unlock_command(pod, specs)}` if that run is gone",
        )


def unlock_command(pod: str, specs: str = "") -> str:
    """The ``gpumod unlock`` command line for a pod defined in ``specs``."""
    return shlex.join(["gpumod", "unlock", pod, *(["--specs", specs] if specs else [])])


def describe_owner(owner: Mapping[str, Any] | None) -> str:
    """``user@host pid N (`command`) since T`` from an owner record."""
    if not owner:
        return "another gpumod run (no owner recorded yet)"
    text = f"{owner.get('user', '?')}@{owner.get('host', '?')} pid {owner.get('pid', '?')}"
    if owner.get("command"):
        text += f" (`{owner['command']}`)"
    if owner.get("started_at"):
        text += f" since {owner['started_at']}"
    return text


def owner_info(command: str | None = None) -> dict[str, Any]:
    """Who this gpumod run is: {host, user, pid, command, started_at} (UTC, ISO 8601)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "command": command if command is not None else " ".join(["gpumod", *sys.argv[1:]]),
        "started_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }


def lock_request(payload: Mapping[str, Any]) -> bytes:
    """What goes on LOCK_BOOT's stdin: ``<length>\\n`` + script + MARKER + JSON payload."""
    script = _SCRIPT_PATH.read_bytes().rstrip(b"\n")
    body = script + MARKER + json.dumps(payload).encode()
    return b"%d\n" % len(body) + body


@dataclass
class PodLock:
    """A held pod lock. ``release()`` (or leaving ``async with``) ends the holder on the pod."""

    pod: str
    path: str
    owner: dict[str, Any]
    process: Any = field(repr=False)
    released: bool = False

    @property
    def held(self) -> bool:
        """False once the holder on the pod is gone (its connection dropped): the lock is lost."""
        return not self.released and self.process.returncode is None

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        await self.process.close()

    async def __aenter__(self) -> "PodLock":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def acquire_pod_lock(
    transport: Transport,
    *,
    pod: str,
    state_dir: str,
    python: str = "python3",
    owner: Mapping[str, Any],
    wait_s: float = 5.0,
    specs: str = "",
) -> PodLock:
    """Take the pod's lock, waiting up to ``wait_s``; ``PodLockedError`` names the holder (and
    how to unlock the pod with the spec directory ``specs``)."""
    payload = {"op": "hold", "pod": pod, "state_dir": state_dir, "owner": dict(owner), "wait_s": wait_s,
               "drain_s": DRAIN_S}
    process = await transport.open_process([python, "-S", "-c", LOCK_BOOT])
    try:
        try:
            process.write(lock_request(payload))
        except (BrokenPipeError, ConnectionResetError):
            pass  # it exited already: its stderr says why
        try:
            line = await asyncio.wait_for(process.readline(), wait_s + DRAIN_S + _START_GRACE_S)
        except asyncio.TimeoutError:
            raise PodError(
                pod, f"the lock holder did not answer within {wait_s + DRAIN_S + _START_GRACE_S:g} s"
            ) from None
        answer = _json(line)
        if isinstance(answer, dict) and answer.get("locked") is True:
            return PodLock(pod, str(answer.get("path", "")), dict(answer.get("owner") or {}), process)
        if isinstance(answer, dict) and answer.get("busy") is not None:
            pids = " ".join(str(p) for p in answer["busy"]) or "unknown"
            raise PodError(
                pod,
                f"operations of an earlier gpumod run are still running on the pod after {DRAIN_S:g} s (pids {pids})",
                hint="a killed run leaves its last stop or start running; run again once they end",
            )
        if isinstance(answer, dict) and answer.get("locked") is False:
            raise PodLockedError(pod, answer.get("owner"), specs=specs)
        if isinstance(answer, dict) and "error" in answer:
            raise PodError(pod, f"cannot take the pod lock: {answer['error']}")
        stderr = (await _bounded(process.read_stderr())).decode("utf-8", "replace").strip()
        detail = "\n".join(stderr.splitlines()[-8:]) or line.strip() or "no output"
        hint = f"is {python} (Python >= 3.8) installed on the pod?" if process.returncode == 127 else ""
        raise PodError(pod, f"cannot take the pod lock (exit {process.returncode}): {detail}", hint=hint)
    except BaseException:
        await process.close()
        raise


async def peek_pod_lock(
    transport: Transport, *, pod: str, state_dir: str, python: str = "python3"
) -> dict[str, Any]:
    """Whether the pod's lock is held right now (``locked``: a live holder) and its ``owner``
    record; changes nothing."""
    return await _lock_op(transport, {"op": "peek", "pod": pod, "state_dir": state_dir}, python, "unlock")


async def break_pod_lock(
    transport: Transport, *, pod: str, state_dir: str, python: str = "python3"
) -> dict[str, Any]:
    """Break a stale lock: kill the recorded holder (only if its /proc start time still matches)
    and remove the owner file. Returns {path, owner, was_locked, killed, released[, lockers]}."""
    return await _lock_op(transport, {"op": "break", "pod": pod, "state_dir": state_dir}, python, "unlock")


async def _lock_op(transport: Transport, payload: Mapping[str, Any], python: str, what: str) -> dict[str, Any]:
    """One request/answer operation of the lock holder script (not "hold")."""
    pod = str(payload["pod"])
    result = await transport.run([python, "-S", "-c", LOCK_BOOT], stdin=lock_request(payload), timeout=30.0)
    answer = _json(result.stdout.decode("utf-8", "replace").strip().splitlines()[-1] if result.stdout.strip() else "")
    if isinstance(answer, dict) and "error" in answer and len(answer) == 1:
        raise PodError(pod, f"{what}: {answer['error']}")
    if result.returncode != 0 or not isinstance(answer, dict):
        detail = result.stderr.decode("utf-8", "replace").strip()[-800:] or "no output"
        raise PodError(pod, f"{what} failed (exit {result.returncode}): {detail}")
    return answer


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


async def _bounded(coro: Any, timeout: float = 5.0) -> bytes:
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        return b""
