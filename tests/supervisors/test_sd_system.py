"""System-scope units end to end on a pod whose PID 1 is a real systemd (recipe 3B, optional).

Uses the ``systemd_pod`` fixture of ``tests/infra/pod_fixtures.py`` when it is there: the pod agent
runs inside the pod through ``nsenter`` (all its namespaces), as root, so ``supervisor: auto``
resolves to systemd and units go to the pod's own ``/etc/systemd/system`` (a tmpfs overlay).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path


from sd_client import SERVER

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.supervisors import (
    SystemdSupervisor,
    choose_scope,
    choose_supervisor,
    env_file_path,
    log_path,
    render_unit,
    unit_name,
)
from gpumod.drivers.transports.local import LocalTransport
from gpumod.observe import parse_observation
from gpumod.ports import CommandResult


class NsenterTransport:
    """Runs every command inside the pod through ``nsenter -t <pod systemd> -a -r -w``."""

    def __init__(self, pod) -> None:
        self.pod = pod
        self.local = LocalTransport()

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        return await self.local.run(self.pod.nsenter_argv(*argv), stdin=stdin, timeout=timeout)

    async def close(self) -> None:
        await self.local.close()


async def test_system_units_on_a_systemd_pod(systemd_pod, tmp_path: Path) -> None:  # noqa: F811
    pod_name = "s" + secrets.token_hex(3)
    state = str(tmp_path / "state")
    agent = PodAgent(NsenterTransport(systemd_pod), pod=pod_name, state_dir=state, python=sys.executable)
    init = (await agent.observe(probe=False))["init"]
    assert init["pid1"] == "systemd" and init["systemd"] is True and init["uid"] == 0
    assert choose_supervisor("auto", init) == "systemd" and choose_scope(init) == "system"

    port = 18000 + secrets.randbelow(1000)
    launch = Launch(
        name="web", argv=(sys.executable, str(SERVER), "--port", str(port), "--child"), env=(("A", "1"),),
        cwd=None, port=port, gpus=(0,), spec_hash="h", driver="command", sleep="none",
        probes=(Probe("health", "/health"),), stop_timeout_s=1.0,
    )
    text = render_unit(launch, pod=pod_name, state_dir=state, log_path=log_path(state, pod_name, "web"),
                       env_file=env_file_path(state, pod_name, "web"), scope="system")
    unit = unit_name(pod_name, "web")
    try:
        started = await SystemdSupervisor(agent, scope="system").start(launch, {"TOKEN": "x"})
        assert started["scope"] == "system" and started["reloaded"] and started["warnings"] == []
        shown = systemd_pod.ssh(f"cat /etc/systemd/system/{unit}; systemctl show -p ControlGroup {unit}", check=True)
        assert shown.stdout.startswith(text) and "ControlGroup=/system.slice/" + unit in shown.stdout

        for _ in range(100):
            raw = await agent.observe()
            entry = raw["services"]["web"]
            if entry.get("probes", {}).get("health", {}).get("status") == 200:
                break
            await asyncio.sleep(0.1)
        assert entry["alive"] and entry["unit"]["active_state"] == "active"
        assert len(entry["pids"]) == 2  # the server and its TERM-ignoring child, in the unit's cgroup
        assert parse_observation(pod_name, raw).service("web").status == "running"

        stopped = await agent.stop("web", 1.0)
        assert stopped["stopped"] and stopped["killed"] and not stopped["left"]
        after = systemd_pod.ssh(f"test -e /etc/systemd/system/{unit}; echo $?; systemctl show -p LoadState {unit}")
        assert after.stdout.split() == ["1", "LoadState=not-found"]
        assert json.loads(json.dumps((await agent.observe(probe=False))["services"])) == {}
    finally:
        systemd_pod.ssh(f"systemctl stop {unit}; rm -f /etc/systemd/system/{unit}; systemctl daemon-reload")
