"""``model_info``: what gpumod knows of one model, for a person (`gpumod model info`) or an agent
(the MCP tool of the same name, the seed's ``model_info(model_id)``).

Why one operation: choosing a model means asking four places at once — the presets that serve it
(their GPU configs and VRAM), the services of the specs that use it (pods, modes, budgets), the
pods' model caches (is it downloaded, how big), and the hub (weights size, and from its
``config.json`` the KV cache per 1,000 tokens: the ``weights_mb`` / ``kv_mb_per_1k`` a Service
can declare instead of a measured ``vram_mb``). A hub that cannot be reached is reported in the
result, never raised: the local facts still answer.

MODEL is a Hugging Face repo id (``org/name``, optional ``@revision``), a preset name or a
service name; the two names resolve to the model they serve.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from gpumod.core.footprint import footprint
from gpumod.core.model import GpuInfo
from gpumod.errors import GpumodError
from gpumod.ops.provision import models as cached_models
from gpumod.ops.snapshot import select_pods
from gpumod.provision import hub_endpoint, hub_files, hub_json
from gpumod.spec import PresetCatalog, SpecSet, load_specs, resolve_service
from gpumod.spec.models import PresetSpec, ServiceSpec
from gpumod.spec.presets import describe_config
from gpumod.spec.setup_models import ModelSource, parse_model_source

__all__ = ["HubFacts", "ModelInfo", "kv_mb_per_1k", "model_info", "weights_bytes"]

MIB = 1 << 20
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "fp8": 1, "int8": 1}
_HUB_TIMEOUT_S = 10.0


def weights_bytes(files: Sequence[tuple[str, int]]) -> int:
    """The weights among a repo's files: its ``*.safetensors`` (else ``*.bin``/``*.pt``, else ``*.gguf``)."""
    for suffixes in ((".safetensors",), (".bin", ".pt", ".pth"), (".gguf",)):
        found = [size for path, size in files if path.endswith(suffixes)]
        if found:
            return sum(found)
    return 0


def kv_mb_per_1k(config: Mapping[str, Any]) -> float | None:
    """MiB of KV cache per 1,000 tokens from a transformers ``config.json`` (None: not a decoder
    config it can read). Keys and values, every layer: 2 x layers x kv_heads x head_dim x dtype bytes."""
    text = config.get("text_config")
    cfg: Mapping[str, Any] = text if isinstance(text, Mapping) else config
    try:
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if min(layers, heads, kv_heads, head_dim) <= 0:
        return None
    dtype = str(cfg.get("torch_dtype") or config.get("torch_dtype") or "bfloat16")
    per_token = 2 * layers * kv_heads * head_dim * _DTYPE_BYTES.get(dtype, 2)
    return math.ceil(per_token * 1000 / MIB * 10) / 10


@dataclass(frozen=True)
class HubFacts:
    endpoint: str
    files: int = 0
    total_bytes: int = 0
    weights_bytes: int = 0
    kv_mb_per_1k: float | None = None
    config: Mapping[str, Any] | None = None  # the few config.json keys the estimate used
    error: str = ""

    @property
    def weights_mb(self) -> int:
        return math.ceil(self.weights_bytes / MIB)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint, "files": self.files, "total_bytes": self.total_bytes,
            "weights_bytes": self.weights_bytes, "weights_mb": self.weights_mb if self.weights_bytes else None,
            "kv_mb_per_1k": self.kv_mb_per_1k, "config": dict(self.config) if self.config else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class PresetUse:
    name: str
    role: str
    driver: str
    sizing: str  # how its VRAM is found: "vram_mb 7000", "gpu_memory_utilization 0.35", "weights ..."
    configs: tuple[tuple[str, int | None], ...]  # ("2 x H100", vram_mb per GPU)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "driver": self.driver, "sizing": self.sizing,
                "configs": [{"gpus": g, "vram_mb": v} for g, v in self.configs]}


@dataclass(frozen=True)
class ServiceUse:
    name: str
    preset: str | None
    modes: tuple[str, ...]
    pods: tuple[str, ...]  # the pods whose mode runs it
    awake_mb: int | None = None  # its footprint per GPU (the planner's figure) on `gpu`
    gpu: str = ""  # "POD GPU-NAME" the footprint was computed for (a pod running it, else any pod)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "modes": list(self.modes), "pods": list(self.pods),
                "awake_mb": self.awake_mb, "gpu": self.gpu}


@dataclass(frozen=True)
class PodCache:
    pod: str
    cached_bytes: int = 0
    complete: bool = False
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "cached_bytes": self.cached_bytes, "complete": self.complete, "error": self.error}


@dataclass(frozen=True)
class ModelInfo:
    query: str
    model: str  # the repo id (or path) the query resolved to
    revision: str | None
    presets: tuple[PresetUse, ...]
    services: tuple[ServiceUse, ...]
    pods: tuple[PodCache, ...]
    hub: HubFacts | None

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query, "model": self.model, "revision": self.revision,
            "presets": [p.to_json() for p in self.presets], "services": [s.to_json() for s in self.services],
            "pods": [p.to_json() for p in self.pods], "hub": self.hub.to_json() if self.hub else None,
        }


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def _sizing(p: PresetSpec) -> str:
    if p.vram_mb:
        return f"vram_mb {p.vram_mb}"
    if p.gpu_memory_utilization:
        return f"gpu_memory_utilization {p.gpu_memory_utilization} of each GPU's total"
    if p.weights_mb:
        kv = f" + KV {p.kv_mb_per_1k} MiB per 1k tokens" if p.kv_mb_per_1k else ""
        return f"weights {p.weights_mb} MiB{kv}"
    return "per GPU config" if p.configs else "not declared"


def _awake_mb(svc: ServiceSpec, specs: SpecSet, catalog: PresetCatalog, running: Sequence[str]
              ) -> tuple[int | None, str]:
    """The planner's awake footprint of SVC on the largest declared GPU of a pod running it (else
    of any pod declaring GPUs); (None, "") when no pod declares its GPUs or it cannot be sized."""
    pods = sorted(specs.pods, key=lambda p: p.name not in running)
    for pod in pods:
        if not pod.gpus:
            continue
        decl = max(pod.gpus, key=lambda g: g.memory_mb)
        gpu = GpuInfo(0, decl.name, decl.memory_mb)
        try:
            spec = resolve_service(svc, catalog, gpu_name=gpu.name, source=specs.source("Service", svc.name))
            return footprint(spec, gpu).awake_mb, f"{pod.name} {gpu.name}"
        except (GpumodError, ValueError):
            return None, ""
    return None, ""


def _hub_facts(source: ModelSource, endpoint: str, token: str | None) -> HubFacts:
    """The repo's files (sizes) and its config.json from the hub; an unreachable hub is a fact too."""
    try:
        files = hub_files(source, endpoint, token, timeout=_HUB_TIMEOUT_S)
    except GpumodError as err:
        return HubFacts(endpoint, error=err.message)
    facts = HubFacts(endpoint, len(files), sum(s for _, s in files), weights_bytes(files))
    if not any(path == "config.json" for path, _ in files):
        return facts
    url = f"{endpoint}/{source.repo}/resolve/{quote(source.revision or 'main', safe='')}/config.json"
    try:
        config = hub_json(url, token, timeout=_HUB_TIMEOUT_S)
    except (OSError, ValueError) as err:
        return HubFacts(endpoint, facts.files, facts.total_bytes, facts.weights_bytes,
                        error=f"config.json: {err}")
    if not isinstance(config, dict):
        return facts
    nested = config.get("text_config")
    text: dict[str, Any] = nested if isinstance(nested, dict) else config
    keys = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_size", "torch_dtype")
    used: dict[str, Any] = {k: text[k] for k in keys if k in text}
    return HubFacts(endpoint, facts.files, facts.total_bytes, facts.weights_bytes, kv_mb_per_1k(config), used)


async def model_info(
    spec_dir: str | Path, model: str, pod_names: Sequence[str] | None = None, *, hub: bool = True,
) -> ModelInfo:
    """What the presets, the specs, the pods' caches and (with ``hub``) the hub say of MODEL."""
    catalog = PresetCatalog.load()
    specs = load_specs(spec_dir)
    query = model.strip()
    if not query:
        raise GpumodError(
            "no model given", hint="give a Hugging Face repo id like Qwen/Qwen3-8B, a preset or a service"
        )
    preset = catalog.get(query)
    service = specs.service(query)
    if service is not None:
        base = catalog.get(service.preset) if service.preset else None
        target = service.model or service.model_path or (base.model or base.model_path if base else None) or ""
    elif preset is not None:
        target = preset.model or preset.model_path or ""
    else:
        target = query
    if not target:
        raise GpumodError(
            f"{query} names no model (its driver serves a command, not a model)",
            hint="ask for a Hugging Face repo id (org/name) or a preset or service that names one",
        )
    source: ModelSource | None
    try:
        source = parse_model_source(target) if "/" in target and not target.startswith(("/", "~", ".")) else None
    except ValueError:
        source = None
    repo = source.repo if source else target

    presets = tuple(
        PresetUse(p.name, p.role or "", p.driver or "", _sizing(p),
                  tuple((describe_config(c), c.vram_mb) for c in p.configs))
        for p in catalog.presets
        if _same(p.model, repo) or _same(p.model_path, repo)
    )
    uses = []
    for s in specs.services:
        base = catalog.get(s.preset) if s.preset else None
        served = s.model or s.model_path or (base.model or base.model_path if base else None)
        if not _same(served, repo):
            continue
        modes = tuple(m.name for m in specs.modes if s.name in {x.name for x in m.members()})
        running = tuple(p.name for p in specs.pods if p.mode in modes)
        awake, where = _awake_mb(s, specs, catalog, running)
        uses.append(ServiceUse(s.name, s.preset, modes, running, awake, where))
    if source is None and not presets and not uses:
        names = [p.name for p in catalog.presets] + [s.name for s in specs.services]
        close = get_close_matches(query, names, n=3)
        raise GpumodError(
            f"no preset, service or Hugging Face repo id named {query}",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "give a repo id like Qwen/Qwen3-8B, or see `gpumod presets` and `gpumod service list`",
        )

    async def caches() -> tuple[PodCache, ...]:
        found = await cached_models(spec_dir, [p.name for p in select_pods(specs, pod_names)])
        out = []
        for pod in found:
            hit = next((m for m in pod.models if _same(m.repo, repo)), None)
            out.append(PodCache(pod.pod, hit.bytes if hit else 0, bool(hit and hit.complete), pod.error))
        return tuple(out)

    async def hub_lookup() -> HubFacts | None:
        if not hub or source is None:
            return None
        return await asyncio.to_thread(_hub_facts, source, hub_endpoint(), os.environ.get("HF_TOKEN") or None)

    pods, facts = await asyncio.gather(caches(), hub_lookup())
    return ModelInfo(query, repo, source.revision if source else None, presets, tuple(uses), pods, facts)
