"""The fleet `gpumod watch` keeps for its whole life: one connection per pod across passes
(reopened after a loss), each pod's lock taken per pass only, handles re-opened when a pod's spec
changes. Against a real sshd on loopback and the local simulated pod."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from gpumod.ops.snapshot import observe_fleet
from gpumod.spec.models import PodSpec
from gpumod.ops.watch import watch as watch_loop
from gpumod.views import ConsoleReporter
from gpumod.wiring import Fleet
from infra.sshd import SshServer


def ssh_pod(server: SshServer, state: Path) -> PodSpec:
    return PodSpec(
        kind="Pod", name="p1", host=server.url, mode="m", identity_file=str(server.client_key),
        known_hosts=str(server.known_hosts), python=sys.executable, state_dir=str(state),
    )


async def test_kept_fleet_reuses_the_connection_across_runs_and_reconnects_after_a_loss(sshd, tmp_path):
    pod = ssh_pod(sshd, tmp_path / "state")
    fleet = Fleet([])
    try:
        for _ in range(3):
            async with fleet.kept_run([pod]) as run:
                assert "p1" in run.locks  # held during the run ...
                (seen,) = await observe_fleet(run)
                assert seen.reachable, seen.error
            assert fleet.locks == {}  # ... and released between runs
        transport = fleet.handles["p1"].transport
        assert transport.connects == 1  # three runs, one connection

        sshd.restart()  # the connection drops between two passes
        async with fleet.kept_run([pod]) as run:
            (seen,) = await observe_fleet(run)
            assert seen.reachable, seen.error
            assert "p1" in run.locks and not run.handles["p1"].error
        assert fleet.handles["p1"].transport is transport and transport.connects == 2
    finally:
        await fleet.close()


@pytest.fixture
def sim_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GPUMOD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


async def test_kept_fleet_follows_spec_changes_and_lets_other_runs_in_between(sim_home):
    pod = PodSpec(kind="Pod", name="box", host="sim", mode="m", gpus=[{"name": "RTX 4090", "memory_mb": 24564}])
    fleet = Fleet([])
    try:
        async with fleet.kept_run([pod]) as run:
            first = run.handles["box"]
            async with Fleet([pod], lock=True, lock_wait_s=0.2) as other:
                assert "locked" in other.handles["box"].error  # a second run waits for this one
        async with Fleet([pod], lock=True, lock_wait_s=0.2) as other:
            assert not other.handles["box"].error and "box" in other.locks  # free between passes
        async with fleet.kept_run([pod]) as run:
            assert run.handles["box"] is first
        changed = pod.model_copy(update={"reserve_mb": 1024})
        async with fleet.kept_run([changed]) as run:
            assert run.handles["box"] is not first and run.handles["box"].spec == changed
        await fleet.follow([])
        assert fleet.handles == {}
    finally:
        await fleet.close()


async def test_watch_passes_share_one_ssh_connection(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUMOD_HOME", str(tmp_path / "home"))
    specs = tmp_path / "specs"
    specs.mkdir()
    pod = ssh_pod(sshd, tmp_path / "state")
    (specs / "pod.yaml").write_text(
        f"kind: Pod\nname: p1\nhost: {pod.host}\nmode: blank\nsupervisor: process\n"
        f"identity_file: {pod.identity_file}\nknown_hosts: {pod.known_hosts}\npython: {pod.python}\n"
        f"state_dir: {pod.state_dir}\ngpus: [{{name: RTX 4090, memory_mb: 24564}}]\nsim: {{load_s: 0.1}}\n"
    )
    (specs / "modes.yaml").write_text("kind: Mode\nname: blank\nservices: []\n")
    logins_before = sshd.log.read_text().count("Accepted publickey")
    text = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_loop(
            specs, None, interval=0.3, reporter=ConsoleReporter(Console(file=text, width=200), recap=True), stop=stop
        )
    )
    try:
        deadline = time.monotonic() + 60
        while text.getvalue().count("Converged") < 3 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert text.getvalue().count("Converged") >= 3, text.getvalue()
    assert sshd.log.read_text().count("Accepted publickey") - logins_before == 1  # one login, many passes
