"""The command driver: any argv with an HTTP health endpoint (``command`` and ``fastapi``).

The spec's ``command`` is an argv list, never a shell line; ``{port}``, ``{host}`` (127.0.0.1, or 0.0.0.0 with
``expose: true``), ``{python}`` (the pod's Python) and ``{model}`` are substituted inside each item, so a value
with spaces or ``;`` stays one argument. Such services cannot sleep.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpumod.drivers.base import HttpAnswer, HttpCall, Launch, PodContext, Probe, ProbedState, service_launch
from gpumod.drivers.flags import gpu_env
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService


class CommandDriver:
    def __init__(self, name: str = "command") -> None:
        self.name = name

    def launch(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> Launch:
        if not svc.command:
            raise GpumodError(f"service {svc.name}: the {self.name} driver needs `command` (an argv list)")
        subs = {"{port}": str(svc.port), "{host}": svc.bind_host, "{python}": ctx.python, "{model}": svc.model or ""}
        argv = []
        for item in svc.command:
            for key, value in subs.items():
                item = item.replace(key, value)
            argv.append(item)
        return service_launch(
            svc,
            gpus,
            argv=argv,
            env=gpu_env(gpus, [], svc.env),
            probes=(Probe("health", svc.health_path),),
            sleep="none",
        )

    def after_start(self, svc: ResolvedService) -> list[HttpCall]:
        return []

    def sleep_calls(self, svc: ResolvedService, level: str) -> list[HttpCall]:
        raise UnsupportedError(f"service {svc.name}: the {self.name} driver cannot sleep a service")

    def wake_calls(self, svc: ResolvedService, level: str | None = None) -> list[HttpCall]:
        raise UnsupportedError(f"service {svc.name}: the {self.name} driver cannot wake a service")

    def within_budget(self, svc: ResolvedService, awake_mb: int, gpu_totals_mb: Sequence[int]) -> ResolvedService:
        return svc  # it takes what it needs, not a share of the GPU

    def parse(self, svc_sleep: str, answers: dict[str, HttpAnswer]) -> ProbedState:
        health = answers.get("health")
        if health is None or health.status == 0:
            return ProbedState("refused", detail="not listening yet")
        if 200 <= health.status < 300:
            return ProbedState("ready")
        if health.status == 503:
            return ProbedState("loading", detail="health answered 503")
        return ProbedState("error", detail=f"health answered {health.status}")
