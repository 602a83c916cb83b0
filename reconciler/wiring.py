"""The composition root: turns a Pod spec into a live handle (transport + agent + driver context).

This is the only engine module that knows the concrete transports and the simulated pod; the
controller works on ``PodHandle`` values it gets from here.
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Callable, Mapping
from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.agent.lock import PodLock, acquire_pod_lock, break_pod_lock, owner_info, peek_pod_lock
from gpumod.drivers.base import PodContext
from gpumod.drivers.supervisors import Supervisor, choose_scope, choose_supervisor, make_supervisor
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import GpumodError, PodError
from gpumod.ports import Transport
from gpumod.sim.attach import local_sim, setup_argv, sim_binaries, sim_env, sim_timings
from gpumod.spec.hosts import parse_host
from gpumod.spec.models import PodSpec

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
    unit_env: dict[str, str] = field(default_factory=dict)  # the sim's env: every service gets it

    def supervisor(self, init: Mapping[str, Any]) -> tuple[str, str]:
        """(process | systemd, system | user) for this pod, from its spec and what PID 1 is."""
        setting = self.spec.supervisor
        if setting == "auto" and parse_host(self.spec.host).kind == "sim":
            return "process", "system"  # a simulated pod on a laptop: never the laptop's user units
        return choose_supervisor(setting, init), choose_scope(init)

    def supervisor_for(self, init: Mapping[str, Any], *, template_dir: Path | None = None) -> Supervisor:
        """The ``Supervisor`` that runs this pod's services (``init``: what the pod agent observed
        about its PID 1); ``template_dir``: the spec repo's ``templates/`` (a unit template)."""
        return make_supervisor(self.agent, *self.supervisor(init), template_dir=template_dir)

    @property
    def name(self) -> str:
        return self.spec.name


def sim_dir(pod: PodSpec) -> Path:
    return gpumod_home() / "sim" / pod.name


def _timings(pod: PodSpec) -> dict[str, str]:
    if pod.sim is None:
        return {}
    found = sim_timings(pod.sim.load_s, pod.sim.sleep_s, pod.sim.wake_s)
    if pod.sim.driver_version:
        found["GPUMOD_SIM_DRIVER_VERSION"] = pod.sim.driver_version
    return found


def setup_env(pod: PodSpec) -> dict[str, str]:
    """What every service of a pod with ``setup:`` gets: the model cache it downloads into (never
    written to a shell rc file)."""
    if pod.setup is None or not pod.setup.models_path:
        return {}
    return {"HF_HUB_CACHE": f"{pod.setup.models_path.rstrip('/')}/huggingface/hub"}


def _with_user_binaries(binaries: list[tuple[str, tuple[str, ...]]], pod: PodSpec):
    if pod.setup is not None:  # vLLM from the setup venv, unless binaries: names another one
        venv_vllm = f"{pod.setup.venv.rstrip('/')}/bin/vllm"
        binaries = [(k, a) for k, a in binaries if k != "vllm"] + [("vllm", (venv_vllm,))]
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
        gpus = [(g.name, g.memory_mb) for g in pod.gpus or []]
        try:
            env, binaries = local_sim(sim_dir(pod), gpus, python, _timings(pod))
        except OSError as err:  # GPUMOD_HOME is a file, or not writable
            raise GpumodError(
                f"pod {pod.name}: cannot set up the simulated pod in {sim_dir(pod)}: {err.strerror or err}",
                hint="point GPUMOD_HOME (default ~/.gpumod) at a directory gpumod can write",
            ) from None
    transport = LocalTransport(env=env)
    agent = PodAgent(transport, pod=pod.name, state_dir=state_dir, python=python)
    ctx = PodContext(
        pod=pod.name,
        python=python,
        binaries=_with_user_binaries(binaries, pod),
        state_dir=state_dir,
    )
    return PodHandle(pod, transport, agent, ctx, sim=host.kind == "sim", unit_env={**env, **setup_env(pod)})


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
        python=pod.python,
        binaries=_with_user_binaries(sim_binaries(pod.python) if pod.sim else [], pod),
        state_dir=state_dir,
    )
    handle = PodHandle(pod, transport, agent, ctx, sim=pod.sim is not None, unit_env=setup_env(pod))
    if pod.sim is not None:  # checked on the pod with the first agent call (one round trip)
        agent.sim = {"dir": f"{state_dir}/sim/{pod.name}", "gpus": [[g.name, g.memory_mb] for g in pod.gpus or []]}
        agent.env.update(_timings(pod))  # PATH and the sim dir come from the pod's answer
        agent.on_sim = lambda info: _sim_ready(handle, info)
        agent.setup_sim = lambda: _setup_sim(handle)
    return handle


def _sim_ready(handle: PodHandle, info: Mapping[str, str]) -> None:
    """The pod answered where its simulated GPUs are: services started from now on get them."""
    python = info["python"]
    handle.unit_env = sim_env(info["dir"], info["bin"], info["path"], _timings(handle.spec))
    handle.agent.env.update(handle.unit_env)
    handle.unit_env.update(setup_env(handle.spec))
    handle.ctx = replace(handle.ctx, python=python, binaries=_with_user_binaries(sim_binaries(python), handle.spec))


async def _setup_sim(handle: PodHandle) -> None:
    """The full set-up of an SSH pod's simulated GPUs (gpumod installed for the pod's python)."""
    assert handle.agent.sim is not None
    argv = setup_argv(handle.spec.python, handle.agent.sim["dir"], handle.agent.sim["gpus"])
    result = await handle.transport.run(argv, timeout=60)
    if not result.ok:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PodError(handle.name, f"setting up the simulated GPUs failed: {tail[0]}")


async def lock_pod(handle: PodHandle, *, wait_s: float, specs: str = "") -> PodLock | None:
    """Take the pod's lock (on the pod); on failure the handle carries the reason instead (with
    the ``gpumod unlock`` line for the spec directory ``specs``, when the pod is locked)."""
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
            specs=specs,
        )
    except GpumodError as err:
        handle.error = str(err)
        return None


async def unlock_pod(pod: PodSpec, *, confirm: Callable[[dict], bool] = lambda owner: True) -> dict:
    """Break a stale lock of one pod (``gpumod unlock``). A lock held right now (a live holder)
    is broken only if ``confirm(owner)`` agrees; otherwise the answer has ``refused``."""
    handle = open_pod(pod)
    try:
        where = dict(pod=pod.name, state_dir=handle.agent.state_dir, python=handle.agent.python)
        seen = await peek_pod_lock(handle.transport, **where)
        if seen.get("locked") and not confirm(dict(seen.get("owner") or {})):
            return {**seen, "was_locked": True, "refused": True}
        return await break_pod_lock(handle.transport, **where)
    finally:
        await handle.transport.close()


class Fleet:
    """The open pods of one run; closes their transports on exit. With ``lock``, each pod's lock
    is held on the pod for the whole run (a pod whose lock is taken is reported, not touched).

    ``watch`` keeps one Fleet for its whole life (``kept_run`` per pass): connections are reused
    across passes, and the SSH transport reopens a dropped one on its next command."""

    def __init__(
        self, pods: list[PodSpec], *, lock: bool = False, lock_wait_s: float = 5.0, specs: str = ""
    ) -> None:
        self.pods = pods
        self.lock = lock
        self.lock_wait_s = lock_wait_s
        self.specs = specs  # the spec directory, for the `gpumod unlock` hint of a locked pod
        self.handles: dict[str, PodHandle] = {}
        self.locks: dict[str, PodLock] = {}

    async def __aenter__(self) -> "Fleet":
        try:
            await self.follow(self.pods)
            if self.lock:
                await self.take_locks()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def follow(self, pods: list[PodSpec]) -> None:
        """Make the handles match ``pods``: a pod whose spec is unchanged keeps its handle (and
        connection; a simulated pod whose set-up failed retries it with its next agent call); the
        others are (re)opened; pods no longer wanted are closed."""
        wanted = {p.name: p for p in pods}
        stale = [h for n, h in self.handles.items() if wanted.get(n) != h.spec]
        for handle in stale:
            del self.handles[handle.name]
        await asyncio.gather(*(h.transport.close() for h in stale), return_exceptions=True)
        for handle in self.handles.values():
            handle.error = ""  # what went wrong in the last run (its lock) is that run's business
        fresh = [open_pod(p) for p in pods if p.name not in self.handles]
        self.handles.update((h.name, h) for h in fresh)
        self.handles = {p.name: self.handles[p.name] for p in pods}
        self.pods = list(pods)

    async def take_locks(self) -> None:
        handles = [h for h in self.handles.values() if h.name not in self.locks]
        locks = await asyncio.gather(*(lock_pod(h, wait_s=self.lock_wait_s, specs=self.specs) for h in handles))
        for handle, held in zip(handles, locks):
            if held is not None:
                self.locks[handle.name] = held

    async def release_locks(self) -> None:
        locks, self.locks = self.locks, {}
        await asyncio.gather(*(held.release() for held in locks.values()), return_exceptions=True)

    @asynccontextmanager
    async def kept_run(self, pods: list[PodSpec]) -> AsyncIterator["Fleet"]:
        """One locked run on a kept fleet: follow ``pods``, take each pod's lock for this run
        only (others may run `gpumod apply` between two watch passes), release it after."""
        await self.follow(pods)
        try:
            await self.take_locks()
            yield self
        finally:
            await self.release_locks()

    def check_locks(self) -> None:
        """A pod whose lock holder died (its SSH connection dropped) is not touched any more this
        run: another run may own it by now."""
        for name, held in self.locks.items():
            handle = self.handles[name]
            if not held.held and not handle.error:
                handle.error = "lost its lock (the connection to the pod dropped); run apply again"

    async def close(self) -> None:
        await self.release_locks()
        handles, self.handles = list(self.handles.values()), {}
        await asyncio.gather(*(h.transport.close() for h in handles), return_exceptions=True)
