"""The llama.cpp driver: ``llama-server`` for one model, or as a router that loads/unloads it.

Facts (reference/runtimes.md §3.1): /health answers 503 while the model loads and 200 once
ready; ``--fit`` defaults to on and would silently shrink what we planned, so ``-c``, ``-ngl``
and ``--fit off`` are pinned (each can be overridden or removed with ``null`` in ``args``).
Router mode (``--models-dir``) serves no model until ``POST /models/load``: gpumod keeps at most
one model loaded and "sleeps" it with ``POST /models/unload``; ``GET /models`` tells each model's
status (unloaded | loading | loaded | sleeping | downloading, ``failed: true`` after a crash).
"""

from __future__ import annotations

import json
import posixpath

from gpumod.drivers.base import HttpAnswer, HttpCall, Launch, PodContext, Probe, ProbedState, service_launch
from gpumod.drivers.flags import Flags, gpu_env
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService

ALIASES = {
    "m": "model",
    "c": "ctx-size",
    "ngl": "n-gpu-layers",
    "gpu-layers": "n-gpu-layers",
    "fa": "flash-attn",
    "np": "parallel",
    "ctk": "cache-type-k",
    "ctv": "cache-type-v",
    "t": "threads",
    "b": "batch-size",
    "ub": "ubatch-size",
    "a": "alias",
    "fitt": "fit-target",
    "fitc": "fit-ctx",
    "hf": "hf-repo",
}
SHORT = ("m", "c", "ngl", "fa", "np", "ctk", "ctv", "t", "b", "ub", "a", "fitt", "fitc", "hf")
LOAD_TIMEOUT_S = 60.0


def is_router(svc: ResolvedService) -> bool:
    return svc.models_dir is not None or svc.sleep == "router"


def router_dir(svc: ResolvedService) -> str | None:
    """The router's --models-dir: the spec's, else the folder of its model_path."""
    if svc.models_dir is not None:
        return svc.models_dir
    if svc.model_path:
        return posixpath.dirname(svc.model_path) or "."
    return None


def router_model_id(svc: ResolvedService) -> str | None:
    """The id the router lists a model under: a models-dir file's name without ``.gguf``."""
    if svc.model_path:
        name = posixpath.basename(svc.model_path)
        return name[: -len(".gguf")] if name.endswith(".gguf") else name
    return svc.model


class LlamaCppDriver:
    name = "llamacpp"

    def launch(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> Launch:
        flags = Flags(aliases=ALIASES, short=SHORT)
        if is_router(svc):
            models_dir = router_dir(svc)
            if models_dir is not None:
                flags.set("models-dir", models_dir)
            flags.set("models-max", "1")
            flags.set("no-models-autoload", True)
        elif svc.model_path:
            flags.set("m", svc.model_path)
        elif svc.model:
            flags.set("hf", svc.model)
        else:
            raise GpumodError(
                f"service {svc.name}: the llamacpp driver needs `model_path` (a .gguf), "
                "`models_dir` (router mode) or `model` (a Hugging Face repo)"
            )
        flags.set("host", svc.bind_host)
        flags.set("port", str(svc.port))
        if svc.context is not None:
            flags.set("c", str(svc.context))
        flags.set("ngl", "999")
        flags.set("fit", "off")
        flags.update(svc.args)
        return service_launch(
            svc,
            gpus,
            argv=(*ctx.binary("llama-server"), *flags.render()),
            env=gpu_env(gpus, [], svc.env),
            probes=self.probes(svc),
            meta=(("router", is_router(svc)),),
        )

    def probes(self, svc: ResolvedService) -> tuple[Probe, ...]:
        if is_router(svc):
            return (Probe("health", "/health"), Probe("models", "/models"))
        return (Probe("health", "/health"),)

    def _model_call(self, svc: ResolvedService, path: str) -> list[HttpCall]:
        model = router_model_id(svc)
        if not model:
            raise GpumodError(f"service {svc.name}: a llama.cpp router needs `model` (the id to load)")
        return [HttpCall("POST", path, body={"model": model}, timeout_s=LOAD_TIMEOUT_S)]

    def after_start(self, svc: ResolvedService) -> list[HttpCall]:
        return self._model_call(svc, "/models/load") if is_router(svc) else []

    def sleep_calls(self, svc: ResolvedService, level: str) -> list[HttpCall]:
        if not is_router(svc):
            raise UnsupportedError(f"service {svc.name}: a single-model llama-server cannot sleep; use router mode")
        return self._model_call(svc, "/models/unload")

    def wake_calls(self, svc: ResolvedService, level: str | None = None) -> list[HttpCall]:
        if not is_router(svc):
            raise UnsupportedError(f"service {svc.name}: a single-model llama-server cannot sleep; use router mode")
        return self._model_call(svc, "/models/load")

    def parse(self, svc_sleep: str, answers: dict[str, HttpAnswer]) -> ProbedState:
        health = answers.get("health")
        if health is None or health.status == 0:
            return ProbedState("refused", detail="not listening yet")
        if health.status == 503:
            return ProbedState("loading", detail="loading the model")
        if health.status != 200:
            return ProbedState("error", detail=f"/health answered {health.status}")
        if "models" not in answers:
            return ProbedState("ready")
        return router_state(answers["models"])


def router_state(answer: HttpAnswer) -> ProbedState:
    """The router's /models: loaded → awake; loading → loading; failed → error; else asleep."""
    if answer.status != 200:
        return ProbedState("loading", detail=f"/models answered {answer.status or 'nothing'}")
    try:
        models = json.loads(answer.body).get("data") or []
    except (ValueError, AttributeError):
        return ProbedState("error", detail="/models is not JSON")
    statuses = {}
    for model in models:
        status = model.get("status") or {}
        statuses[str(model.get("id"))] = status if isinstance(status, dict) else {"value": str(status)}
    loaded = sorted(m for m, s in statuses.items() if s.get("value") == "loaded")
    if loaded:
        return ProbedState("ready", detail=f"model {loaded[0]} loaded", extra={"loaded": loaded})
    busy = sorted(m for m, s in statuses.items() if s.get("value") in ("loading", "downloading"))
    if busy:
        return ProbedState("loading", detail=f"model {busy[0]} {statuses[busy[0]]['value']}")
    failed = sorted(m for m, s in statuses.items() if s.get("failed"))
    if failed:
        code = statuses[failed[0]].get("exit_code")
        return ProbedState("error", detail=f"model {failed[0]} failed to load (exit code {code})")
    return ProbedState("ready", sleep_level="router", detail="no model loaded")
