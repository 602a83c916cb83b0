"""Follow a service's log on its pod (``gpumod logs -f``).

Why a process of its own: the pod agent answers one request and exits, so it can give a tail but
not what comes after. A small stdlib-only script runs on the pod as a long-running transport
process (like the lock holder): it prints the last N lines, then every byte appended, reopens
the file when the agent rotates it (or it appears later), and exits when its stdin closes
(gpumod stopped following, exited, or lost the connection).
"""

from __future__ import annotations

from typing import AsyncIterator

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.supervisors import log_path
from gpumod.errors import PodError

__all__ = ["FOLLOW_SCRIPT", "follow_log"]

FOLLOW_SCRIPT = r"""
import os, sys, threading, time
path, lines = os.path.expanduser(sys.argv[1]), int(sys.argv[2])
def _eof():
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except OSError:
        pass
    os._exit(0)
threading.Thread(target=_eof, daemon=True).start()
out, f, first = sys.stdout.buffer, None, True
while True:
    if f is None:
        try:
            f = open(path, 'rb')
        except OSError:
            first = False
            time.sleep(0.3)
            continue
        inode = os.fstat(f.fileno()).st_ino
        if first:
            size = f.seek(0, 2)
            f.seek(max(0, size - max(65536, lines * 512)))
            tail = f.read().splitlines(True)[-lines:] if lines > 0 else []
            out.write(b''.join(tail))
            first = False
    data = f.read()
    if data:
        out.write(data)
        out.flush()
        continue
    out.flush()
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or st.st_ino != inode or st.st_size < f.tell():
        f.close()
        f = None
        continue
    time.sleep(0.2)
"""


async def follow_log(agent: PodAgent, name: str, lines: int) -> AsyncIterator[str]:
    """The last ``lines`` lines of service ``name``'s log on the agent's pod, then each new line,
    until the caller stops iterating (the process on the pod is then ended)."""
    path = log_path(agent.state_dir, agent.pod, name)
    process = await agent.transport.open_process([agent.python, "-S", "-u", "-c", FOLLOW_SCRIPT, path, str(lines)])
    try:
        while True:
            line = await process.readline()
            if not line:
                break
            yield line.rstrip("\n")
        detail = (await process.read_stderr()).decode("utf-8", "replace").strip().splitlines()[-1:]
        raise PodError(agent.pod, f"following the log of {name} ended: {detail[0] if detail else 'no output'}")
    finally:
        await process.close()
