"""A small hand-written YAML form of DesiredPod / ObservedPod for the golden plan scenarios.

Pure: text in, frozen values out. desired.yaml::

    pod: box                      # or `pods: [ {...}, {...} ]` for several pods
    mode: code
    down: false                   # true: `gpumod down` (services then lists none)
    reserve_mb: 512               # default 512
    max_awake: 1                  # default 1
    gpus: [24564]                 # total MiB per GPU, or [{name: ..., total_mb: ...}]
    services:
      glm-code: {awake: 19100, asleep: 300, sleep: router, target: active,
                 depends_on: [embedding-code], gpus: 1 | [0], drift: correct,
                 context: 32768, kv_mb_per_1k: 166, version: 1}
      tiny: {weights_mb: 13000, context: 32768, kv_mb_per_1k: 166}   # no `awake`: estimated

``awake`` is the spec's fixed ``vram_mb`` (default 1000); with ``weights_mb`` instead, the
footprint is the estimate (weights + KV cache for the context + overhead).

observed.yaml::

    pod: box
    observed_at: 1000             # default 1000
    reachable: true
    error: ""
    gpus: [24564]                 # optional (default: none observed)
    foreign: {0: 1500}            # MiB per GPU used by processes gpumod does not manage
    services:
      glm-code: {status: running, gpus: [0], version: 1, sleep_level: l1,
                 vram: {0: 21000}, failures: 2, last_failure_at: 990, message: "",
                 depends_on: [embedding-code]}     # as recorded on the pod when it started

An observed service's spec hash is the desired spec's hash at ``version`` (default: the desired
version, i.e. up to date); ``hash: abc`` sets it literally.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from gpumod.core.footprint import footprint
from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod, ObservedService
from gpumod.spec.resolved import ResolvedService

GPU_NAME = "NVIDIA GeForce RTX 4090"


def _pods(doc: Any) -> list[dict]:
    if doc is None:
        return []
    if isinstance(doc, dict) and "pods" in doc:
        return list(doc["pods"])
    return [doc] if isinstance(doc, dict) else list(doc)


def _gpus(raw: Any) -> tuple[GpuInfo, ...]:
    out = []
    for i, g in enumerate(raw or ()):
        if isinstance(g, int):
            out.append(GpuInfo(index=i, name=GPU_NAME, total_mb=g))
        else:
            out.append(GpuInfo(index=g.get("index", i), name=g.get("name", GPU_NAME), total_mb=g["total_mb"]))
    return tuple(out)


def _spec(name: str, raw: dict, port: int, version: Any) -> ResolvedService:
    gpus = raw.get("gpus", 1)
    return ResolvedService(
        name=name,
        driver=raw.get("driver", "vllm"),
        port=port,
        vram_mb=raw.get("awake", None if "weights_mb" in raw else 1000),
        weights_mb=raw.get("weights_mb"),
        context=raw.get("context"),
        kv_mb_per_1k=raw.get("kv_mb_per_1k"),
        sleep=raw.get("sleep", "none"),
        gpu_count=len(gpus) if isinstance(gpus, list) else gpus,
        pinned_gpus=tuple(gpus) if isinstance(gpus, list) else None,
        depends_on=tuple(raw.get("depends_on", ())),
        drift=raw.get("drift", "correct"),
        extra=(("version", version),),
    )


def _desired_pod(raw: dict) -> DesiredPod:
    gpus = _gpus(raw.get("gpus", [24564]))
    services = []
    for i, (name, s) in enumerate(sorted((raw.get("services") or {}).items())):
        s = s or {}
        sleep = s.get("sleep", "none")
        spec = _spec(name, s, 8000 + i, s.get("version", 1))
        awake = footprint(spec, gpus[0]).awake_mb
        asleep = int(s.get("asleep", awake if sleep == "none" else 500))
        services.append(DesiredService(name, s.get("target", "active"), spec, Footprint(awake, asleep)))
    return DesiredPod(
        name=raw["pod"],
        mode=raw.get("mode", "default"),
        gpus=gpus,
        reserve_mb=int(raw.get("reserve_mb", 512)),
        max_awake=int(raw.get("max_awake", 1)),
        services=tuple(services),
        down=bool(raw.get("down", False)),
    )


def _observed_pod(raw: dict, desired: DesiredPod | None) -> ObservedPod:
    services = []
    for name, s in sorted((raw.get("services") or {}).items()):
        s = s or {}
        want = desired.service(name) if desired else None
        if "hash" in s:
            spec_hash = str(s["hash"])
        elif want is not None:
            version = s.get("version", dict(want.spec.extra).get("version"))
            spec_hash = replace(want.spec, extra=(("version", version),)).spec_hash()
        else:
            spec_hash = "0ff0ff0ff0ff"
        services.append(
            ObservedService(
                name=name,
                status=s.get("status", "running"),
                spec_hash=spec_hash,
                gpus=tuple(s.get("gpus", [0])),
                sleep_level=s.get("sleep_level"),
                vram_mb=tuple(sorted((int(g), int(mb)) for g, mb in (s.get("vram") or {}).items())),
                failures=int(s.get("failures", 0)),
                last_failure_at=s.get("last_failure_at"),
                message=s.get("message", ""),
                depends_on=tuple(s.get("depends_on", ())),
            )
        )
    return ObservedPod(
        name=raw["pod"],
        reachable=bool(raw.get("reachable", True)),
        error=raw.get("error", ""),
        gpus=_gpus(raw.get("gpus")),
        services=tuple(services),
        foreign_mb=tuple(sorted((int(g), int(mb)) for g, mb in (raw.get("foreign") or {}).items())),
        observed_at=float(raw.get("observed_at", 1000)),
    )


def load_scenario(desired_text: str, observed_text: str) -> tuple[tuple[DesiredPod, ...], tuple[ObservedPod, ...]]:
    desired = tuple(_desired_pod(p) for p in _pods(yaml.safe_load(desired_text)))
    by_name = {d.name: d for d in desired}
    observed = tuple(_observed_pod(p, by_name.get(p["pod"])) for p in _pods(yaml.safe_load(observed_text)))
    return desired, observed
