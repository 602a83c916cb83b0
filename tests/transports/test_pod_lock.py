"""The per-pod lock: a real flock held on "the pod" by the holder script, locally and over SSH."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpumod.drivers.agent.lock import (
    PodLockedError,
    acquire_pod_lock,
    break_pod_lock,
    describe_owner,
    owner_info,
)
from gpumod.drivers.transports.local import LocalTransport
from gpumod.drivers.transports.ssh import SshTransport
from gpumod.errors import PodError
from gpumod.spec import parse_host
from infra.sshd import SshServer

PY = sys.executable


def owner(n: int) -> dict:
    return {"host": f"laptop{n}", "user": f"user{n}", "pid": 1000 + n, "command": "gpumod apply specs/",
            "started_at": f"2025-01-0{n}T10:00:00Z"}


def ssh_transport(server: SshServer) -> SshTransport:
    host = parse_host(f"ssh -p {server.port} -i {server.client_key} root@127.0.0.1")
    return SshTransport(host, pod="gpod", known_hosts=server.known_hosts)


async def test_second_holder_fails_naming_the_owner_then_gets_it_after_release(tmp_path):
    state = str(tmp_path / "state")
    local = LocalTransport()
    first = await acquire_pod_lock(local, pod="box", state_dir=state, python=PY, owner=owner(1))
    owner_file = tmp_path / "state/pods/box/lock.owner"
    recorded = json.loads(owner_file.read_text())
    assert stat.S_IMODE(owner_file.stat().st_mode) == 0o600
    assert recorded["user"] == "user1" and recorded["holder"]["pid"] == first.owner["holder"]["pid"]

    started = time.monotonic()
    with pytest.raises(PodLockedError) as caught:
        await acquire_pod_lock(local, pod="box", state_dir=state, python=PY, owner=owner(2), wait_s=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert str(caught.value) == (
        "pod box: locked by user1@laptop1 pid 1001 (`gpumod apply specs/`) since 2025-01-01T10:00:00Z; "
        "wait, or `gpumod unlock box` if that run is gone"
    )
    assert caught.value.owner["host"] == "laptop1"

    await first.release()
    assert not owner_file.exists()
    async with await acquire_pod_lock(local, pod="box", state_dir=state, python=PY, owner=owner(2), wait_s=0.3) as lock:
        assert lock.owner["user"] == "user2"


async def test_waiting_holder_gets_the_lock_when_it_is_released_in_time(tmp_path):
    state = str(tmp_path / "state")
    first = await acquire_pod_lock(LocalTransport(), pod="box", state_dir=state, python=PY, owner=owner(1))
    waiter = asyncio.create_task(
        acquire_pod_lock(LocalTransport(), pod="box", state_dir=state, python=PY, owner=owner(2), wait_s=10)
    )
    await asyncio.sleep(0.3)
    assert not waiter.done()
    await first.release()
    second = await asyncio.wait_for(waiter, 10)
    assert second.owner["user"] == "user2"
    await second.release()


async def test_invalid_pod_name_and_missing_python_are_clear_errors(tmp_path):
    with pytest.raises(PodError, match="invalid pod name"):
        await acquire_pod_lock(LocalTransport(), pod="../etc", state_dir=str(tmp_path), python=PY, owner=owner(1))
    with pytest.raises(PodError, match="exit 127") as caught:
        await acquire_pod_lock(LocalTransport(), pod="box", state_dir=str(tmp_path), python="/nonexistent/python3",
                               owner=owner(1))
    assert "Python >= 3.8" in caught.value.hint


def test_owner_info_and_description():
    info = owner_info("gpumod apply specs/")
    assert info["pid"] == os.getpid() and info["started_at"].endswith("Z")
    assert describe_owner(info).startswith(f"{info['user']}@{info['host']} pid {os.getpid()} (`gpumod apply specs/`)")


async def test_over_ssh_second_run_fails_and_a_dead_gpumod_releases_the_lock(sshd, tmp_path):
    state = str(tmp_path / "state")
    script = (
        "import asyncio,sys\n"
        "from gpumod.drivers.agent.lock import acquire_pod_lock\n"
        "from gpumod.drivers.transports.ssh import SshTransport\n"
        "from gpumod.spec import parse_host\n"
        "async def main():\n"
        f"    t = SshTransport(parse_host({f'ssh -p {sshd.port} -i {sshd.client_key} root@127.0.0.1'!r}),"
        f" known_hosts={str(sshd.known_hosts)!r})\n"
        f"    await acquire_pod_lock(t, pod='gpod', state_dir={state!r}, python={PY!r},"
        " owner={'host': 'other', 'user': 'bob', 'pid': 7, 'command': 'gpumod apply x/', 'started_at': 'T0'})\n"
        "    print('locked', flush=True)\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    first = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    transport = ssh_transport(sshd)
    try:
        assert first.stdout.readline() == b"locked\n", first.stderr.read()
        with pytest.raises(PodLockedError, match=r"locked by bob@other pid 7 \(`gpumod apply x/`\) since T0"):
            await acquire_pod_lock(transport, pod="gpod", state_dir=state, python=PY, owner=owner(2), wait_s=0.2)
        first.kill()  # gpumod dies: its connection drops, the holder sees EOF, the flock goes
        first.wait(5)
        lock = await acquire_pod_lock(transport, pod="gpod", state_dir=state, python=PY, owner=owner(2), wait_s=5)
        assert lock.owner["user"] == "user2"
        await lock.release()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(5)
        first.stdout.close()
        first.stderr.close()
        await transport.close()


async def test_lock_holds_one_channel_and_commands_still_run(sshd, tmp_path):
    transport = ssh_transport(sshd)
    try:
        lock = await acquire_pod_lock(transport, pod="gpod", state_dir=str(tmp_path), python=PY, owner=owner(1))
        results = await asyncio.gather(*(transport.run(["echo", str(i)], timeout=30) for i in range(20)))
        assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(20)]
        await lock.release()
        assert lock.process.returncode == 0
    finally:
        await transport.close()


async def test_break_pod_lock_kills_the_recorded_holder_and_frees_the_pod(sshd, tmp_path):
    state = str(tmp_path / "state")
    holder_side, breaker_side = ssh_transport(sshd), ssh_transport(sshd)
    try:
        stale = await acquire_pod_lock(holder_side, pod="gpod", state_dir=state, python=PY, owner=owner(1))
        found = await break_pod_lock(breaker_side, pod="gpod", state_dir=state, python=PY)
        assert found["was_locked"] and found["killed"] and found["released"]
        assert found["owner"]["user"] == "user1"
        assert await asyncio.wait_for(stale.process.readline(), 5) == ""  # the holder is gone
        assert not (tmp_path / "state/pods/gpod/lock.owner").exists()
        lock = await acquire_pod_lock(breaker_side, pod="gpod", state_dir=state, python=PY, owner=owner(2), wait_s=1)
        await lock.release()
        await stale.release()
        again = await break_pod_lock(breaker_side, pod="gpod", state_dir=state, python=PY)
        assert again["was_locked"] is False and again["released"] and again["owner"] is None
    finally:
        await holder_side.close()
        await breaker_side.close()


async def test_break_never_kills_a_pid_whose_start_time_does_not_match(tmp_path):
    state = str(tmp_path / "state")
    lock = await acquire_pod_lock(LocalTransport(), pod="box", state_dir=state, python=PY, owner=owner(1))
    owner_file = tmp_path / "state/pods/box/lock.owner"
    victim = subprocess.Popen(["sleep", "60"])
    try:
        forged = json.loads(owner_file.read_text())
        forged["holder"] = {**forged["holder"], "pid": victim.pid}  # recorded start time is the holder's
        owner_file.write_text(json.dumps(forged))
        found = await break_pod_lock(LocalTransport(), pod="box", state_dir=state, python=PY)
        assert found["was_locked"] and not found["killed"] and not found["released"]
        assert found["stale_pid"] == victim.pid
        assert lock.owner["holder"]["pid"] in found["lockers"]
        assert victim.poll() is None and lock.process.returncode is None
    finally:
        victim.kill()
        victim.wait()
        await lock.release()


async def test_break_on_a_pod_never_locked(tmp_path):
    found = await break_pod_lock(LocalTransport(), pod="box", state_dir=str(tmp_path), python=PY)
    assert found["released"] and found["owner"] is None and not found["killed"]


async def test_holder_exits_when_killed_by_term_and_cleans_its_owner_file(tmp_path):
    lock = await acquire_pod_lock(LocalTransport(), pod="box", state_dir=str(tmp_path), python=PY, owner=owner(1))
    os.kill(lock.owner["holder"]["pid"], signal.SIGTERM)
    assert await asyncio.wait_for(lock.process.readline(), 5) == ""
    await lock.release()
    assert not Path(tmp_path / "pods/box/lock.owner").exists()
