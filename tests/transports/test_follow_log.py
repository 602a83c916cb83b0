"""Following a service log on "the pod" (`gpumod logs -f`), locally and over a real SSH server:
the last lines, then what is appended, across the agent's rotation; nothing is left running."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.agent.follow import follow_log
from gpumod.drivers.transports.local import LocalTransport
from gpumod.drivers.transports.ssh import SshTransport
from gpumod.spec import parse_host
from testkit import pids_by_argv, wait_until

PY = sys.executable


async def _next(lines, timeout: float = 20.0) -> str:
    return await asyncio.wait_for(lines.__anext__(), timeout)


async def _follow_and_rotate(agent: PodAgent, state: Path) -> None:
    log = state / "pods" / agent.pod / "logs" / "web.log"
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo [x] [/path]\nthree\n")
    lines = follow_log(agent, "web", 2)
    try:
        assert [await _next(lines), await _next(lines)] == ["two [x] [/path]", "three"]
        with log.open("a") as f:
            f.write("four\n")
        assert await _next(lines) == "four"
        os.replace(log, f"{log}.1")  # what the agent does when the log grows too big
        log.write_text("five, in the new file\n")
        assert await _next(lines) == "five, in the new file"
        assert _followers(log)
    finally:
        await lines.aclose()
    assert wait_until(lambda: not _followers(log), timeout=10), "the follower outlived the follow"


def _followers(log: Path) -> list[int]:
    return pids_by_argv(lambda argv: str(log).encode() in argv)


async def test_follow_a_local_log_across_rotation(tmp_path: Path) -> None:
    state = tmp_path / "state"
    await _follow_and_rotate(PodAgent(LocalTransport(), pod="box", state_dir=str(state), python=PY), state)


async def test_follow_over_ssh(sshd, tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = parse_host(f"ssh -p {sshd.port} -i {sshd.client_key} root@127.0.0.1")
    transport = SshTransport(host, pod="gpod", known_hosts=sshd.known_hosts)
    try:
        await _follow_and_rotate(PodAgent(transport, pod="gpod", state_dir=str(state), python=PY), state)
    finally:
        await transport.close()
