"""How a client reaches the served models: each service's URL, model id and key (`gpumod endpoints`),
and SSH port forwards to the laptop (`gpumod tunnel`).

Why a module of its own: a service listens on 127.0.0.1 of its pod unless its spec says
``expose: true`` (then on every interface, with an API key). So what URL a client uses depends
on the pod's host and the spec, and a remote service that is not exposed is reached through a
forward of its port over the pod's SSH connection (asyncssh ``forward_local_port``, like
``ssh -L``), which lives as long as the command runs. The values here are plain data; the CLI
prints them (``gpumod.reach_cli``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpumod.ops.snapshot import desired_for, observe_fleet, select_pods
from gpumod.core.model import ObservedPod
from gpumod.drivers.llamacpp import is_router, router_model_id
from gpumod.errors import GpumodError
from gpumod.spec import PresetCatalog, load_specs, parse_host
from gpumod.spec.models import PodSpec
from gpumod.spec.resolved import ResolvedService
from gpumod.wiring import Fleet


@dataclass(frozen=True)
class Endpoint:
    """One service as a client sees it. ``url`` is None when only a tunnel reaches it."""

    pod: str
    service: str
    model: str | None  # the model id to send (``"model": ...``)
    port: int
    status: str  # as observed: running, sleeping, stopped ... ("unreachable" pod)
    reach: str  # local (this machine) | public (exposed) | tunnel (via `gpumod tunnel`)
    url: str | None
    api_key: str | None  # where the key comes from: "env:NAME" or "file:PATH" (never the value)

    @property
    def api_key_env(self) -> str | None:
        return self.api_key[4:] if self.api_key and self.api_key.startswith("env:") else None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def served_model(svc: ResolvedService) -> str | None:
    """The id a client puts in ``"model"``: what the server lists under /v1/models."""
    args = dict(svc.args)
    if svc.driver == "vllm":
        name = args.get("served-model-name") or args.get("served_model_name")
        if isinstance(name, (tuple, list)):
            name = name[0] if name else None
        return str(name) if name else (svc.model.partition("@")[0] if svc.model else None)  # org/name@rev
    if svc.driver == "llamacpp":
        if is_router(svc):
            return router_model_id(svc)
        alias = args.get("alias") or args.get("a")
        return str(alias) if alias else (svc.model_path or svc.model)
    return svc.model


def _key_ref(svc: ResolvedService) -> str | None:
    return dict(svc.secrets).get(svc.api_key_env) if svc.api_key_env else None


def endpoints_of(pods: Sequence[PodSpec], desired: Sequence[Any], observed: Sequence[ObservedPod]) -> list[Endpoint]:
    """The endpoints of every desired service of ``pods`` (pure: from specs and an observation)."""
    seen = {o.name: o for o in observed}
    found = []
    for pod in pods:
        want = next((d for d in desired if d.name == pod.name), None)
        obs = seen.get(pod.name)
        host = parse_host(pod.host)
        remote = host.kind == "ssh"
        for ds in want.services if want is not None else ():
            svc = ds.spec
            running = obs.service(svc.name) if obs is not None and obs.reachable else None
            status = (
                "unreachable" if obs is not None and not obs.reachable else (running.status if running else "stopped")
            )
            port = running.port if running is not None and running.port else svc.port
            if not remote:
                reach, url = "local", f"http://127.0.0.1:{port}/v1"
            elif svc.expose:
                reach, url = "public", f"http://{_url_host(pod.public_host or host.host or '')}:{port}/v1"
            else:
                reach, url = "tunnel", None
            found.append(Endpoint(pod.name, svc.name, served_model(svc), port, status, reach, url, _key_ref(svc)))
    return found


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def endpoints(spec_dir: str | Path, pod_names: Sequence[str] | None) -> list[Endpoint]:
    """Observe the selected pods and say how each service is reached."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
    desired = desired_for(specs, PresetCatalog.load(), pods, observed)
    return endpoints_of(pods, desired, observed)


@dataclass(frozen=True)
class Forward:
    """A service reachable on this machine at ``local_port`` (forwarded, or direct on a local pod)."""

    endpoint: Endpoint
    local_port: int
    forwarded: bool

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}/v1"


LIVE = ("running", "sleeping", "starting", "unhealthy")


async def tunnel(
    spec_dir: str | Path,
    pod_names: Sequence[str] | None,
    ready: Callable[[list[Forward], list[Endpoint]], None],
    *,
    hold: bool = True,
) -> list[Forward]:
    """Forward the port of each live service of the selected SSH pods to 127.0.0.1 here (the same
    port when it is free, else any free one), call ``ready(forwards, skipped)``, then keep the
    forwards open until cancelled (Ctrl+C). Services of local and sim pods are reached directly:
    nothing is forwarded and, when no pod needs a forward, it returns at once."""
    specs = load_specs(spec_dir)
    pods = select_pods(specs, pod_names)
    async with Fleet(pods) as fleet:
        observed = await observe_fleet(fleet)
        for obs in observed:
            if not obs.reachable:
                raise GpumodError(f"pod {obs.name} is unreachable: {obs.error}", hint="check `gpumod status`")
        desired = desired_for(specs, PresetCatalog.load(), pods, observed)
        forwards: list[Forward] = []
        skipped: list[Endpoint] = []
        for ep in endpoints_of(pods, desired, observed):
            if ep.status not in LIVE:
                skipped.append(ep)
            elif ep.reach == "local":
                forwards.append(Forward(ep, ep.port, forwarded=False))
            else:
                transport = fleet.handles[ep.pod].transport
                forwards.append(Forward(ep, await _forward(transport, ep), forwarded=True))
        ready(forwards, skipped)
        remote = sorted({f.endpoint.pod for f in forwards if f.forwarded})
        if hold and remote:  # until Ctrl+C cancels the run, or a pod's connection drops
            await _first_closed({pod: fleet.handles[pod].transport for pod in remote})
        return forwards


async def _first_closed(transports: dict[str, Any]) -> None:
    """Wait until one pod's SSH connection closes, then say so (its forwards are gone)."""
    waits = {asyncio.ensure_future(t.wait_closed()): pod for pod, t in transports.items()}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    pod = waits[next(iter(done))]
    raise GpumodError(
        f"pod {pod}: the SSH connection closed, so its forwards ended",
        hint="is the pod still up? run `gpumod tunnel` again",
    )


async def _forward(transport: Any, ep: Endpoint) -> int:
    forward = getattr(transport, "forward_local_port", None)
    if forward is None:
        raise GpumodError(f"pod {ep.pod}: its transport cannot forward ports", hint="use an ssh:// host")
    try:
        return int(await forward(ep.port, ep.port))
    except OSError:  # the same port is taken here: any free one
        return int(await forward(0, ep.port))
