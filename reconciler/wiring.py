"""The composition root: turns a Pod spec into a live handle (transport + agent + driver context).

This is the only engine module that knows the concrete transports and the simulated pod; the
controller works on ``PodHandle`` values it gets from here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any, Mapping
from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.agent.lock import PodLock, acquire_pod_lock, break_pod_lock, owner_info
from gpumod.drivers.base import PodContext
from gpumod.drivers.supervisors import choose_scope, choose_supervisor
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import GpumodError, PodError
from gpumod.ports import Transport
from gpumod.spec import parse_host
from gpumod.spec.models import PodSpec

SIM_SERVER = ("-m", "gpumod.sim.server", "--flavour")
REMOTE_STATE_DIR = "~/.gpumod"

def gpumod_home() -> Path:
    return Path(os.environ.get("GPUMOD_HOME") or Path.home() / ".gpumod").expanduser()


@dataclass
class PodHandle:
    spec: PodSpec
    transport: Transport
    agent: PodAgent
    ctx: PodContext
    sim: bool  # its GPUs are simulated (host: sim, or an SSH pod with sim:)
    error: str = ""  # set when preparing the pod failed: it is then reported unreachable
    unit_env: dict[str, str] = field(default_factory=dict)  # the sim's env, for services run as units

    def supervisor(self, init: Mapping[str, Any]) -> tuple[str, str]:
        """(process | systemd, system | user) for this pod, from its spec and what PID 1 is."""
        setting = self.spec.supervisor
        if setting == "auto" and parse_host(self.spec.host).kind == "sim":
            return "process", "system"  # a simulated pod on a laptop: never the laptop's user units
        return choose_supervisor(setting, init), choose_scope(init)

    @property
    def name(self) -> str:
        return self.spec.name


def sim_dir(pod: PodSpec) -> Path:
    return gpumod_home() / "sim" / pod.name


def sim_timings(pod: PodSpec) -> dict[str, str]:
    """The sim servers' load/sleep/wake seconds from the pod's ``sim:``, as their env."""
    if pod.sim is None:
        return {}
    return {
        "GPUMOD_SIM_LOAD_S": str(pod.sim.load_s),
        "GPUMOD_SIM_SLEEP_S": str(pod.sim.sleep_s),
        "GPUMOD_SIM_WAKE_S": str(pod.sim.wake_s),
    }


def sim_env(sim_directory: str, bindir: str, path: str, pod: PodSpec) -> dict[str, str]:
    return {"PATH": f"{bindir}{os.pathsep}{path}", "GPUMOD_SIM_DIR": sim_directory, **sim_timings(pod)}


def sim_binaries(python: str) -> list[tuple[str, tuple[str, ...]]]:
    return [
        ("vllm", (python, *SIM_SERVER, "vllm", "--")),
        ("llama-server", (python, *SIM_SERVER, "llamacpp", "--")),
    ]


def _with_user_binaries(binaries: list[tuple[str, tuple[str, ...]]], pod: PodSpec):
    for kind, path in sorted(pod.binaries.items()):
        binaries = [(k, a) for k, a in binaries if k != kind] + [(kind, (path,))]
    return tuple(binaries)


def open_pod(pod: PodSpec) -> PodHandle:
    """Build the handle of one pod (nothing is contacted yet)."""
    host = parse_host(pod.host)
    if host.kind == "ssh":
        return _open_ssh_pod(pod, host)
    state_dir = pod.state_dir or str(gpumod_home())
    python = sys.executable
    env: dict[str, str] = {}
    binaries: list[tuple[str, tuple[str, ...]]] = []
    if host.kind == "sim":
        from gpumod.sim.pod import ensure_sim_pod

        directory = sim_dir(pod)
        bindir = ensure_sim_pod(directory, [(g.name, g.memory_mb) for g in pod.gpus or []], python)
        env = sim_env(str(directory), str(bindir), os.environ.get("PATH", ""), pod)
        binaries = sim_binaries(python)
    transport = LocalTransport(env=env)
    agent = PodAgent(transport, pod=pod.name, state_dir=state_dir, python=python)
    ctx = PodContext(
        pod=pod.name,
        sim=host.kind == "sim",
        python=python,
        binaries=_with_user_binaries(binaries, pod),
        state_dir=state_dir,
    )
    return PodHandle(pod, transport, agent, ctx, sim=host.kind == "sim", unit_env=env)


def _open_ssh_pod(pod: PodSpec, host) -> PodHandle:
    from gpumod.drivers.transports.ssh import SshTransport

    if pod.identity_file:
        host = replace(host, key=os.path.expanduser(pod.identity_file))
    transport = SshTransport(
        host,
        pod=pod.name,
        accept_new_host_key=pod.accept_new_host_key,
        known_hosts=os.path.expanduser(pod.known_hosts) if pod.known_hosts else None,
    )
    state_dir = pod.state_dir or REMOTE_STATE_DIR
    agent = PodAgent(transport, pod=pod.name, state_dir=state_dir, python=pod.python)
    ctx = PodContext(
        pod=pod.name,
        sim=pod.sim is not None,
        python=pod.python,
        binaries=_with_user_binaries(sim_binaries(pod.python) if pod.sim else [], pod),
        state_dir=state_dir,
    )
    handle = PodHandle(pod, transport, agent, ctx, sim=pod.sim is not None)
    if pod.sim is not None:  # checked on the pod with the first agent call (one round trip)
        agent.sim = {"dir": f"{state_dir}/sim/{pod.name}", "gpus": [[g.name, g.memory_mb] for g in pod.gpus or []]}
        agent.env.update(sim_timings(pod))  # PATH and the sim dir come from the pod's answer
        agent.on_sim = lambda info: _sim_ready(handle, info)
        agent.setup_sim = lambda: _setup_sim(handle)
    return handle


def _sim_ready(handle: PodHandle, info: Mapping[str, str]) -> None:
    """The pod answered where its simulated GPUs are: services started from now on get them."""
    python = info["python"]
    handle.unit_env = sim_env(info["dir"], info["bin"], info["path"], handle.spec)
    handle.agent.env.update(handle.unit_env)
    handle.ctx = replace(handle.ctx, python=python, binaries=_with_user_binaries(sim_binaries(python), handle.spec))


async def _setup_sim(handle: PodHandle) -> None:
    """The full set-up of an SSH pod's simulated GPUs (gpumod installed for the pod's python)."""
    assert handle.agent.sim is not None
    where, gpus = handle.agent.sim["dir"], json.dumps(handle.agent.sim["gpus"])
    result = await handle.transport.run([handle.spec.python, "-m", "gpumod.sim.pod", where, gpus], timeout=60)
    if not result.ok:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PodError(handle.name, f"setting up the simulated GPUs failed: {tail[0]}")


async def lock_pod(handle: PodHandle, *, wait_s: float) -> PodLock | None:
    """Take the pod's lock (on the pod); on failure the handle carries the reason instead."""
    if handle.error:
        return None
    try:
        return await acquire_pod_lock(
            handle.transport,
            pod=handle.name,
            state_dir=handle.agent.state_dir,
            python=handle.agent.python,
            owner=owner_info(" ".join(["gpumod", *sys.argv[1:]])),
            wait_s=wait_s,
        )
    except GpumodError as err:
        handle.error = str(err)
        return None


async def unlock_pod(pod: PodSpec) -> dict:
    """Break a stale lock of one pod (``gpumod unlock``)."""
    handle = open_pod(pod)
    try:
        return await break_pod_lock(
            handle.transport, pod=pod.name, state_dir=handle.agent.state_dir, python=handle.agent.python
        )
    finally:
        await handle.transport.close()


class Fleet:
    """The open pods of one run; closes their transports on exit. With ``lock``, each pod's lock
    is held on the pod for the whole run (a pod whose lock is taken is reported, not touched)."""

    def __init__(self, pods: list[PodSpec], *, lock: bool = False, lock_wait_s: float = 5.0) -> None:
        self.pods = pods
        self.lock = lock
        self.lock_wait_s = lock_wait_s
        self.handles: dict[str, PodHandle] = {}
        self.locks: dict[str, PodLock] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> "Fleet":
        for pod in self.pods:
            handle = open_pod(pod)
            self.handles[pod.name] = handle
            self._stack.push_async_callback(handle.transport.close)
        if self.lock:
            handles = list(self.handles.values())
            locks = await asyncio.gather(*(lock_pod(h, wait_s=self.lock_wait_s) for h in handles))
            for handle, held in zip(handles, locks):
                if held is not None:
                    self.locks[handle.name] = held
                    self._stack.push_async_callback(held.release)
        return self

    def check_locks(self) -> None:
        """A pod whose lock holder died (its SSH connection dropped) is not touched any more this
        run: another run may own it by now."""
        for name, held in self.locks.items():
            handle = self.handles[name]
            if not held.held and not handle.error:
                handle.error = "lost its lock (the connection to the pod dropped); run apply again"

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
