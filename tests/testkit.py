"""Small helpers every test folder needs (importable as `testkit`: tests/ is on sys.path)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable


_GIVEN: set[int] = set()


def _port_slice() -> tuple[int, int]:
    """This test process's share of 20000-32000: under pytest-xdist each worker (``gwN`` of
    PYTEST_XDIST_WORKER_COUNT) draws from its own slice, so two workers never pick the same port."""
    low, high = 20000, 32000
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0:
        width = (high - low) // int(count)
        low += int(worker[2:]) * width
        high = low + width
    return low, high


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this test process has
    not handed out before. Drawn below Linux's ephemeral range (32768-60999) at random, so neither
    a client's outgoing connection nor a second call (the kernel's ``bind(0)`` may repeat a port
    it just released) can take it while the test means to use it."""
    low, high = _port_slice()
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(low, high)
        if port in _GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll until ``predicate()`` is true or ``timeout`` seconds pass; its last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())



def pids_by_argv(match: Callable[[list[bytes]], bool]) -> list[int]:
    """PIDs of the processes on this machine whose argv (read from /proc, split at NUL) MATCH accepts."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if match(argv):
            found.append(int(proc.name))
    return found


# A git author and committer for the commits tests make, and for the ones gpumod makes (--commit).
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(cwd: Path | str, *args: str) -> str:
    """Run git in CWD as GIT_ENV's author, with no user config (HOME is CWD); its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
        env={**GIT_ENV, "HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    ).stdout


@dataclass
class FakeClock:
    """A ``gpumod.ports.Clock`` whose ``sleep`` only advances ``t``: executor waits (health,
    VRAM release, fill) run in zero seconds, and ``t`` says how long they would have taken."""

    t: float = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
