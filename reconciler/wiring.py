"""The composition root: turns a Pod spec into a live handle (transport + agent + driver context).

This is the only engine module that knows the concrete transports and the simulated pod; the
controller works on ``PodHandle`` values it gets from here.
"""

from __future__ import annotations

import os
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import PodContext
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import UnsupportedError
from gpumod.ports import Transport
from gpumod.spec import parse_host
from gpumod.spec.models import PodSpec

SIM_SERVER = ("-m", "gpumod.sim.server", "--flavour")


def gpumod_home() -> Path:
    return Path(os.environ.get("GPUMOD_HOME") or Path.home() / ".gpumod").expanduser()


@dataclass
class PodHandle:
    spec: PodSpec
    transport: Transport
    agent: PodAgent
    ctx: PodContext
    sim: bool

    @property
    def name(self) -> str:
        return self.spec.name


def sim_dir(pod: PodSpec) -> Path:
    return gpumod_home() / "sim" / pod.name


def open_pod(pod: PodSpec) -> PodHandle:
    """Build the handle of one pod. Raises UnsupportedError for kinds of host not supported yet."""
    host = parse_host(pod.host)
    state_dir = pod.state_dir or str(gpumod_home())
    if host.kind == "ssh":
        raise UnsupportedError(
            f"pod {pod.name}: SSH pods ({pod.host}) are not supported yet",
            hint="SSH support lands with the next release; use `host: local` or `host: sim` meanwhile, "
            "or select other pods with --pod",
        )
    python = sys.executable
    env: dict[str, str] = {}
    binaries: list[tuple[str, tuple[str, ...]]] = []
    if host.kind == "sim":
        from gpumod.sim.pod import ensure_sim_pod

        directory = sim_dir(pod)
        bindir = ensure_sim_pod(directory, [(g.name, g.memory_mb) for g in pod.gpus or []], python)
        sim = pod.sim
        env = {
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "GPUMOD_SIM_DIR": str(directory),
        }
        if sim is not None:
            env.update(
                GPUMOD_SIM_LOAD_S=str(sim.load_s),
                GPUMOD_SIM_SLEEP_S=str(sim.sleep_s),
                GPUMOD_SIM_WAKE_S=str(sim.wake_s),
            )
        binaries = [
            ("vllm", (python, *SIM_SERVER, "vllm", "--")),
            ("llama-server", (python, *SIM_SERVER, "llamacpp", "--")),
        ]
    for kind, path in sorted(pod.binaries.items()):
        binaries = [(k, a) for k, a in binaries if k != kind] + [(kind, (os.path.expanduser(path),))]
    transport = LocalTransport(env=env)
    agent = PodAgent(transport, pod=pod.name, state_dir=state_dir, python=python)
    ctx = PodContext(
        pod=pod.name,
        sim=host.kind == "sim",
        python=python,
        binaries=tuple(binaries),
        state_dir=state_dir,
    )
    return PodHandle(pod, transport, agent, ctx, sim=host.kind == "sim")


class Fleet:
    """The open pods of one pass; closes their transports on exit."""

    def __init__(self, pods: list[PodSpec]) -> None:
        self.pods = pods
        self.handles: dict[str, PodHandle] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> "Fleet":
        for pod in self.pods:
            handle = open_pod(pod)
            self.handles[pod.name] = handle
            self._stack.push_async_callback(handle.transport.close)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
