"""Where a service answers OpenAI requests, from the specs: its pod, port and model id.

A local or simulated pod's service listens on ``127.0.0.1:PORT``. An SSH pod's service binds
127.0.0.1 on the pod, so it is reached through a local port forward over the pod's own SSH
connection (the same host, key and known_hosts checks as every gpumod command), open for as
long as the chat runs. The model id is what the server lists at ``/v1/models`` (the spec's
model or ``served-model-name`` when listed, else the first one). When the service takes its API
key from a secret in its ``env`` (``VLLM_API_KEY``, ``LLAMA_API_KEY``), the chat reads the same
secret here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from gpumod.errors import GpumodError
from gpumod.spec import PresetCatalog, load_specs, parse_host, resolve_service
from gpumod.spec.loader import SpecSet
from gpumod.spec.models import PodSpec
from gpumod.spec.resolved import ResolvedService

__all__ = ["API_KEY_ENV", "Endpoint", "Target", "find_target", "open_endpoint", "service_api_key"]

API_KEY_ENV = ("VLLM_API_KEY", "LLAMA_API_KEY")  # the servers read their API key from these


@dataclass(frozen=True)
class Target:
    """A service on a pod, as the specs describe it."""

    pod: PodSpec
    service: str
    port: int
    model: str | None  # served-model-name, else the spec's model
    resolved: ResolvedService | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Endpoint:
    target: Target
    base_url: str  # http://127.0.0.1:PORT/v1 on this machine
    model: str


def _pods_running(specs: SpecSet, service: str) -> list[PodSpec]:
    """Pods whose mode has ``service`` (or a member that depends on it)."""
    found = []
    for pod in specs.pods:
        mode = specs.mode(pod.mode)
        todo = [m.name for m in mode.members()] if mode else []
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            spec = specs.service(name)
            todo.extend(spec.depends_on if spec else ())
        if service in seen:
            found.append(pod)
    return found


def find_target(spec_dir: str | Path, service: str, pod: str | None = None) -> Target:
    specs = load_specs(spec_dir)
    svc = specs.service(service)
    if svc is None:
        raise GpumodError(
            f"no service named {service} in {spec_dir}",
            hint=f"services: {', '.join(s.name for s in specs.services) or 'none'}",
        )
    if pod is not None:
        chosen = specs.pod(pod)
        if chosen is None:
            raise GpumodError(
                f"no pod named {pod} in {spec_dir}", hint=f"pods: {', '.join(p.name for p in specs.pods)}"
            )
    else:
        candidates = _pods_running(specs, service) or (list(specs.pods) if len(specs.pods) == 1 else [])
        if not candidates:
            raise GpumodError(
                f"service {service} is in the mode of no pod, so it does not run anywhere",
                hint="add it to a pod's mode and `gpumod apply`, or name the pod with --pod",
            )
        if len(candidates) > 1:
            raise GpumodError(
                f"service {service} runs on several pods: {', '.join(p.name for p in candidates)}",
                hint="choose one with --pod",
            )
        chosen = candidates[0]
    gpu_name = chosen.gpus[0].name if chosen.gpus else None
    resolved = resolve_service(
        svc, PresetCatalog.load(), gpu_name=gpu_name, source=specs.source("Service", service),
        pod_env=chosen.env, pod_source=specs.source("Pod", chosen.name),
        env_sources=specs.env_sources(chosen.name, service),
    )
    served = dict(resolved.args).get("served-model-name")
    own = (resolved.model or "").partition("@")[0] if resolved.driver == "vllm" else resolved.model  # org/name@rev
    model = str(served[0] if isinstance(served, list) and served else served or own or "") or None
    return Target(pod=chosen, service=service, port=resolved.port, model=model, resolved=resolved)


def service_api_key(target: Target) -> str | None:
    """The API key the service was started with, when its ``env`` takes it from a secret."""
    svc = target.resolved
    if svc is None:
        return None
    refs = tuple((k, ref) for k, ref in svc.secrets if k in API_KEY_ENV)
    if not refs:
        return None
    from gpumod.secrets import load_secret_values

    values = load_secret_values(replace(svc, secrets=refs))
    return next(iter(values.values()), None)


def _not_answering(target: Target, where: str, why: str) -> GpumodError:
    return GpumodError(
        f"service {target.service} on pod {target.pod.name} does not answer at {where}: {why}",
        hint="is it running? see `gpumod status DIR`; start it with `gpumod apply DIR`",
    )


async def _model_id(target: Target, base_url: str, headers: dict[str, str]) -> str:
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.get(f"{base_url}/models", headers=headers)
    except httpx.HTTPError as e:
        raise _not_answering(target, base_url, str(e) or type(e).__name__) from None
    if answer.status_code in (401, 403):
        raise GpumodError(
            f"service {target.service} on pod {target.pod.name} refused the API key ({answer.status_code})",
            hint="set OPENAI_API_KEY (or name the variable with --api-key-env)",
        )
    if answer.status_code != 200:
        raise _not_answering(target, base_url, f"/v1/models answered {answer.status_code}")
    try:
        ids = [str(card["id"]) for card in answer.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        ids = []
    if target.model in ids or not ids:
        if target.model is None:
            raise _not_answering(target, base_url, "it lists no model")
        return target.model
    return ids[0]


@asynccontextmanager
async def open_endpoint(target: Target, api_key: str | None) -> AsyncIterator[Endpoint]:
    """The service reachable from here for the life of the block (SSH: a local forward)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    host = parse_host(target.pod.host)
    if host.kind != "ssh":
        base = f"http://127.0.0.1:{target.port}/v1"
        yield Endpoint(target, base, await _model_id(target, base, headers))
        return
    from gpumod.chat.forward import forward_port

    async with forward_port(target.pod, target.port) as local_port:
        base = f"http://127.0.0.1:{local_port}/v1"
        yield Endpoint(target, base, await _model_id(target, base, headers))
