"""Helpers for the pod agent tests: /proc reading, waiting, free ports, and the reaper."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import Launch, Probe
from testkit import free_port, wait_until  # noqa: F401 - re-exported to the agent tests

PR_SET_CHILD_SUBREAPER = 36
TINY_SERVER = Path(__file__).with_name("tiny_server.py")


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session) of a pid, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1]), int(fields[3])


def dead(pid: int) -> bool:
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def session_pids(leader: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[2] == leader:
                pids.append(int(entry))
    return pids


class Reaper:
    def __init__(self) -> None:
        self.leaders: list[int] = []
        self.pids: list[int] = []

    def track(self, pid: int, *, leader: bool = True) -> int:
        (self.leaders if leader else self.pids).append(pid)
        return pid

    def cleanup(self) -> None:
        victims = set(self.pids)
        for leader in self.leaders:
            victims.update(session_pids(leader))
            victims.add(leader)
        for pid in victims:
            if not dead(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        wait_until(lambda: all(dead(p) for p in victims), timeout=5.0)
        self.reap()

    @staticmethod
    def reap() -> None:
        """Collect our zombie children (adopted orphans); by PID, never waitpid(-1)."""
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = proc_stat(int(entry))
                if st and st[1] == os.getpid() and st[0] == "Z":
                    try:
                        os.waitpid(int(entry), os.WNOHANG)
                    except ChildProcessError:
                        pass


SECRET = "s3cr3t-Value-9f1c"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def server_launch(name: str, port: int, *extra: str, cwd: str | None = None, stop_timeout_s: float = 5.0) -> Launch:
    return Launch(
        name=name,
        argv=(sys.executable, str(TINY_SERVER), "--port", str(port), *extra),
        env=(("CUDA_VISIBLE_DEVICES", "0"), ("GPUMOD_TEST_PLAIN", "plain-value")),
        cwd=cwd,
        port=port,
        gpus=(0,),
        spec_hash="abc123",
        driver="command",
        sleep="none",
        probes=(Probe("health", "/health"),),
        stop_timeout_s=stop_timeout_s,
    )


def get(port: int, path: str) -> str:
    with NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
        return resp.read().decode()


def listening(port: int) -> bool:
    try:
        get(port, "/health")
        return True
    except OSError:
        return False


async def start_server(agent: PodAgent, reaper, name: str, *extra: str, **kw) -> tuple[int, int]:
    port = free_port()
    started = await agent.start(server_launch(name, port, *extra, **kw))
    reaper.track(started["pid"])
    assert wait_until(lambda: listening(port)), "the tiny server did not come up"
    return started["pid"], port
