"""The vLLM driver: ``vllm serve`` command line, sleep/wake calls, and reading its probes.

Facts it relies on (vLLM's OpenAI-compatible server, as documented and seen in its source): vLLM
does not listen until the engine is ready (connection refused = still loading; first 200 on /health
= ready); sleep needs ``--enable-sleep-mode`` plus ``VLLM_SERVER_DEV_MODE=1``; ``/is_sleeping`` and
the ``vllm:engine_sleep_state`` gauge (awake / weights_offloaded = L1 / discard_all = L2) tell the
sleep state; an L2 wake must reload the weights.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import replace

from gpumod.drivers.base import HttpAnswer, HttpCall, Launch, PodContext, Probe, ProbedState, service_launch
from gpumod.drivers.flags import Flags, gpu_env
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService

SLEEP_LEVELS = ("l1", "l2")
SLEEP_TIMEOUT_S = 300.0
SLEEP_METRIC = "vllm:engine_sleep_state"
_SLEEP_LINE = re.compile(r'^vllm:engine_sleep_state\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)', re.M)
_STATE_LABEL = re.compile(r'sleep_state="(?P<state>[^"]*)"')
_METRIC_LEVEL = {"weights_offloaded": "l1", "discard_all": "l2"}


class VllmDriver:
    name = "vllm"

    def launch(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> Launch:
        if not svc.model:
            raise GpumodError(
                f"service {svc.name}: the vllm driver needs `model`", hint="set `model:` (a Hugging Face id)"
            )
        flags = Flags(aliases={"tp": "tensor-parallel-size"}, short=("tp",))
        flags.set("host", svc.bind_host)
        flags.set("port", str(svc.port))
        if svc.gpu_memory_utilization is not None:
            flags.set("gpu-memory-utilization", str(svc.gpu_memory_utilization))
        if svc.context is not None:
            flags.set("max-model-len", str(svc.context))
        tensor_parallel = len(gpus) or svc.gpu_count
        if tensor_parallel > 1:
            flags.set("tensor-parallel-size", str(tensor_parallel))
        if svc.sleep in SLEEP_LEVELS:
            flags.set("enable-sleep-mode", True)
        repo, _, revision = svc.model.partition("@")  # model: org/name@rev (a download's revision)
        if revision:
            flags.set("revision", revision)
        flags.update(svc.args)
        argv = (*ctx.binary("vllm"), "serve", repo, *flags.render())
        base = [("VLLM_SERVER_DEV_MODE", "1")] if svc.sleep in SLEEP_LEVELS else []
        return service_launch(
            svc, gpus, argv=argv, env=gpu_env(gpus, base, svc.env), probes=self.probes(svc)
        )

    def probes(self, svc: ResolvedService) -> tuple[Probe, ...]:
        probes = [Probe("health", "/health")]
        if svc.sleep in SLEEP_LEVELS:
            probes.append(Probe("sleep", "/is_sleeping"))
        probes.append(Probe("metrics", "/metrics", grep=SLEEP_METRIC))
        return tuple(probes)

    def after_start(self, svc: ResolvedService) -> list[HttpCall]:
        return []

    def sleep_calls(self, svc: ResolvedService, level: str) -> list[HttpCall]:
        if svc.sleep not in SLEEP_LEVELS:
            raise UnsupportedError(f"service {svc.name}: sleep is {svc.sleep!r}; vLLM sleeps only with l1 or l2")
        level = level if level in SLEEP_LEVELS else svc.sleep
        return [HttpCall("POST", f"/sleep?level={level[1]}", timeout_s=SLEEP_TIMEOUT_S)]

    def wake_calls(self, svc: ResolvedService, level: str | None = None) -> list[HttpCall]:
        """``level``: the level it was put to sleep at, when known (default: the spec's)."""
        if svc.sleep not in SLEEP_LEVELS:
            raise UnsupportedError(f"service {svc.name}: sleep is {svc.sleep!r}; nothing to wake")
        if (level if level in SLEEP_LEVELS else svc.sleep) == "l1":
            return [HttpCall("POST", "/wake_up", timeout_s=SLEEP_TIMEOUT_S)]
        # L2 discarded the weights: wake the weights' memory, reload them, then the KV cache
        return [
            HttpCall("POST", "/wake_up?tags=weights", timeout_s=SLEEP_TIMEOUT_S),
            HttpCall("POST", "/collective_rpc", body={"method": "reload_weights"}, timeout_s=SLEEP_TIMEOUT_S),
            HttpCall("POST", "/wake_up?tags=kv_cache", timeout_s=SLEEP_TIMEOUT_S),
            HttpCall("POST", "/reset_prefix_cache", timeout_s=60.0),
        ]

    def within_budget(self, svc: ResolvedService, awake_mb: int, gpu_totals_mb: Sequence[int]) -> ResolvedService:
        """vLLM takes ``gpu_memory_utilization`` x total (default 0.9) whatever ``vram_mb`` says: a
        service budgeted by ``vram_mb`` is started with the share of its smallest GPU that matches
        its budget (rounded up to 0.001, at most 1)."""
        if svc.gpu_memory_utilization is not None or not gpu_totals_mb:
            return svc
        share = min(1.0, math.ceil(awake_mb / min(gpu_totals_mb) * 1000) / 1000)
        return replace(svc, gpu_memory_utilization=share)

    def parse(self, svc_sleep: str, answers: dict[str, HttpAnswer]) -> ProbedState:
        health = answers.get("health")
        if health is None or health.status == 0:
            return ProbedState("refused", detail="not listening yet (vLLM opens its port once the engine is ready)")
        if health.status != 200:
            return ProbedState("error", detail=f"/health answered {health.status}")
        metric_level, _ = metrics_sleep_level(answers.get("metrics"))
        # asleep if either says so: /is_sleeping stays true until every tag is restored, and
        # the gauge may lag; a wake is done only when both agree
        if not (_is_sleeping(answers.get("sleep")) or metric_level):
            return ProbedState("ready")
        level = metric_level or (svc_sleep if svc_sleep in SLEEP_LEVELS else "l1")
        return ProbedState("ready", sleep_level=level, detail=f"asleep ({level})")


def _is_sleeping(answer: HttpAnswer | None) -> bool | None:
    if answer is None or answer.status != 200:
        return None
    try:
        value = json.loads(answer.body).get("is_sleeping")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def metrics_sleep_level(answer: HttpAnswer | None) -> tuple[str | None, bool]:
    """From ``vllm:engine_sleep_state`` lines: (level or None when awake, whether the gauge was found).

    Any engine asleep counts (data parallel); L2 wins over L1 when engines disagree.
    """
    if answer is None or answer.status != 200:
        return None, False
    found = False
    levels: set[str] = set()
    for match in _SLEEP_LINE.finditer(answer.body):
        state = _STATE_LABEL.search(match.group("labels"))
        if state is None:
            continue
        found = True
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        if value > 0 and state.group("state") in _METRIC_LEVEL:
            levels.add(_METRIC_LEVEL[state.group("state")])
    level = "l2" if "l2" in levels else ("l1" if levels else None)
    return level, found
