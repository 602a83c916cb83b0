"""The desired state of each pod, built from the specs (pure).

Planning rule 1: desired per pod = the services of the pod's mode, each resolved against its
preset for the pod's GPUs, with a target state and a VRAM footprint. The GPUs are the observed
ones when known (a real pod), else the declared ones (a sim pod, or a pod not reachable yet).
``mode_override``, ``add`` and ``services`` let ``gpumod simulate --mode M --add S`` and
``--services A,B`` ask "what if" without editing a file; a service asked for brings the services
it depends on (transitively), awake, unless the mode already has them. Problems of every pod are
collected into one SpecError.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from gpumod.core.footprint import footprint, sizing_gpu
from gpumod.core.model import DesiredPod, DesiredService, GpuInfo, Target
from gpumod.errors import GpumodError, Problem, SpecError
from gpumod.spec.loader import SpecSet
from gpumod.spec.models import ModeMember, PodSpec
from gpumod.spec.presets import PresetCatalog, resolve_service, split_source

CUSTOM_MODE = "custom"  # the mode name of a pod planned for an explicit set of services


def build_desired(
    specs: SpecSet,
    catalog: PresetCatalog,
    gpus_by_pod: Mapping[str, tuple[GpuInfo, ...]],
    *,
    pods: Collection[str] | None = None,
    mode_override: Mapping[str, str] = {},
    add: Mapping[str, Sequence[str]] = {},
    services: Mapping[str, Sequence[str]] = {},
) -> tuple[DesiredPod, ...]:
    """One DesiredPod per selected pod (all pods when ``pods`` is None), sorted by name.

    ``services`` replaces a pod's mode by exactly these services (all active), named ``custom``.
    """
    selected = _select(
        specs, pods, mode_override, {p: [*add.get(p, ()), *services.get(p, ())] for p in {*add, *services}}
    )
    problems: list[Problem] = []
    hints: set[str] = set()
    out: list[DesiredPod] = []
    for pod in selected:
        try:
            gpus = gpus_by_pod.get(pod.name, ())
            out.append(_desired_pod(specs, catalog, pod, gpus, mode_override, add, services.get(pod.name)))
        except SpecError as err:
            problems.extend(err.problems)
            hints.add(err.hint)
    if problems:
        raise SpecError(problems, hint=hints.pop() if len(hints) == 1 else "")
    return tuple(out)


def pod_gpus(pod: PodSpec, observed: tuple[GpuInfo, ...]) -> tuple[GpuInfo, ...]:
    """The observed GPUs if any, else the declared ones (index = position)."""
    if observed:
        return tuple(sorted(observed, key=lambda g: g.index))
    return tuple(GpuInfo(index=i, name=g.name, total_mb=g.memory_mb) for i, g in enumerate(pod.gpus or ()))


def _select(
    specs: SpecSet, pods: Collection[str] | None, mode_override: Mapping[str, str], add: Mapping[str, Sequence[str]]
) -> list[PodSpec]:
    known = [p.name for p in specs.pods]
    for name in sorted(set(pods or ()) | set(mode_override) | set(add)):
        if specs.pod(name) is None:
            raise GpumodError(f"no pod named '{name}' in the specs", hint=f"pods: {', '.join(known) or 'none'}")
    for pod, mode in sorted(mode_override.items()):
        if specs.mode(mode) is None:
            names = ", ".join(m.name for m in specs.modes) or "none"
            raise GpumodError(f"no mode named '{mode}' in the specs (asked for pod {pod})", hint=f"modes: {names}")
    for pod, services in sorted(add.items()):
        for name in services:
            if specs.service(name) is None:
                names = ", ".join(s.name for s in specs.services) or "none"
                raise GpumodError(
                    f"no service named '{name}' in the specs (asked for pod {pod})", hint=f"services: {names}"
                )
    return sorted((p for p in specs.pods if pods is None or p.name in pods), key=lambda p: p.name)


def _desired_pod(
    specs: SpecSet,
    catalog: PresetCatalog,
    pod: PodSpec,
    observed: tuple[GpuInfo, ...],
    mode_override: Mapping[str, str],
    add: Mapping[str, Sequence[str]],
    only: Sequence[str] | None = None,
) -> DesiredPod:
    gpus = pod_gpus(pod, observed)
    if not gpus:
        path, line = specs.where("Pod", pod.name)
        raise SpecError(
            [
                Problem(
                    path, line, f"pod {pod.name} has no GPUs known: none observed and none declared; add gpus: [...]"
                )
            ],
            hint="declare the pod's GPUs (gpus: [...]) or check that nvidia-smi works on the pod",
        )
    mode_name = mode_override.get(pod.name, pod.mode)
    mode = specs.mode(mode_name)
    if only is not None:
        mode_name, max_awake, listed = CUSTOM_MODE, mode.max_awake if mode else 1, [ModeMember(name=n) for n in only]
    elif mode is None:
        path, line = specs.where("Pod", pod.name, "mode")
        raise SpecError([Problem(path, line, f"mode '{mode_name}' is not defined")])
    else:
        mode_name, max_awake, listed = mode.name, mode.max_awake, mode.members()
    members = _members(specs, listed, add.get(pod.name, ()))
    problems: list[Problem] = []
    services: list[DesiredService] = []
    for name, target in members:
        try:
            services.append(_desired_service(specs, catalog, mode_name, gpus, name, target, pod))
        except SpecError as err:
            problems.extend(err.problems)
    if problems:
        raise SpecError(problems)
    return DesiredPod(
        name=pod.name,
        mode=mode_name,
        gpus=gpus,
        reserve_mb=pod.reserve_mb,
        max_awake=max_awake,
        services=tuple(services),
    )


def _members(specs: SpecSet, members: Sequence[ModeMember], added: Sequence[str]) -> list[tuple[str, Target]]:
    """The mode's members, then the added services (active) and what they depend on (active,
    transitively; a member keeps the state its mode gives it)."""
    out: dict[str, Target] = {m.name: m.state for m in members}
    for name in added:
        out[name] = "active"
    todo = [*added, *(m.name for m in members)]
    while todo:
        svc = specs.service(todo.pop(0))
        for dep in svc.depends_on if svc else ():
            if dep not in out:
                out[dep] = "active"
                todo.append(dep)
    return list(out.items())


def _desired_service(
    specs: SpecSet,
    catalog: PresetCatalog,
    mode: str,
    gpus: tuple[GpuInfo, ...],
    name: str,
    target: Target,
    pod: PodSpec,
) -> DesiredService:
    svc = specs.service(name)
    source = specs.source("Service", name)
    if svc is None:
        path, line = specs.where("Mode", mode)
        raise SpecError([Problem(path, line, f"service '{name}' of mode {mode} is not defined")])
    gpu = _sizing_gpu(gpus, svc.gpus, source)
    resolved = resolve_service(
        svc, catalog, gpu_name=gpu.name, source=source, pod_env=pod.env, pod_source=specs.source("Pod", pod.name),
        env_sources=specs.env_sources(pod.name, name),
    )
    if resolved.secrets:  # a missing secret is reported at its own `env:` line, not the document's
        origins = tuple(
            (
                key,
                specs.source("Service", name, "env", key)
                if key in (svc.env or {})
                else specs.source("Pod", pod.name, "env", key)
                if key in (pod.env or {})
                else dict(resolved.secret_origins)[key],
            )
            for key, _ in resolved.secrets
        )
        resolved = replace(resolved, secret_origins=origins)
    return DesiredService(name=name, target=target, spec=resolved, footprint=footprint(resolved, gpu))


def _sizing_gpu(gpus: tuple[GpuInfo, ...], wanted: int | list[int] | None, source: str) -> GpuInfo:
    """The GPU to size a service on (``sizing_gpu``); a pin on a GPU the pod lacks is a SpecError."""
    if isinstance(wanted, list) and wanted:
        by_index = {g.index: g for g in gpus}
        missing = [i for i in wanted if i not in by_index]
        if missing:
            path, line = split_source(source)
            have = ", ".join(str(g.index) for g in gpus)
            raise SpecError(
                [Problem(path, line, f"pins GPU {missing[0]}, but the pod has GPUs {have}; pin GPUs it has")]
            )
    return sizing_gpu(gpus, wanted if isinstance(wanted, list) else None)
