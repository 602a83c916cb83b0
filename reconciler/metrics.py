"""Prometheus metrics of `gpumod watch --metrics-port N`: what an unattended controller did.

Why a module of its own: watch is the only long-lived process, and only it serves metrics, so
``prometheus_client`` is imported here and this module only by watch when a port is asked for
(every other verb starts without it). The families, all prefixed ``gpumod_``:

  passes_total{outcome}                 apply passes of watch: converged | not_converged | error
  pass_duration_seconds                 histogram of those passes
  steps_total{pod,action,outcome}       plan steps run: ok | failed | skipped (counted as they end)
  gpu_memory_used_bytes{pod,gpu}        VRAM in use, as nvidia-smi reported it in the last pass
  gpu_memory_total_bytes{pod,gpu}       VRAM of each GPU
  services{pod,state}                   managed services by observed state (absent: desired, not there)
  degraded_services{pod}                services in crash-loop backoff (the plan defers them)
  pod_up{pod}                           1 when the pod could be observed in the last pass
  seconds_since_last_converged_pass     computed at scrape time; counts from watch's start until
                                        the first converged pass
The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from typing import Any, Callable, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gpumod.core.model import Plan, Status
from gpumod.errors import GpumodError
from gpumod.ops.apply import ApplyResult
from gpumod.ops.events import Event, Reporter, StepFinished

MIB = 1024 * 1024
STATES = (*get_args(Status), "absent")
PASS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

__all__ = ["WatchMetrics"]


class WatchMetrics:
    """The metric families of one watch, in their own registry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        r = self.registry = CollectorRegistry()
        self._clock = clock
        self._last_converged = clock()
        self.passes = Counter("gpumod_passes", "apply passes of watch, by outcome", ["outcome"], registry=r)
        self.pass_seconds = Histogram(
            "gpumod_pass_duration_seconds", "duration of watch's apply passes", buckets=PASS_BUCKETS, registry=r
        )
        self.steps = Counter(
            "gpumod_steps", "plan steps run, by pod, action and outcome", ["pod", "action", "outcome"], registry=r
        )
        self.vram_used = Gauge("gpumod_gpu_memory_used_bytes", "VRAM in use per GPU", ["pod", "gpu"], registry=r)
        self.vram_total = Gauge("gpumod_gpu_memory_total_bytes", "VRAM of each GPU", ["pod", "gpu"], registry=r)
        self.services = Gauge("gpumod_services", "managed services by observed state", ["pod", "state"], registry=r)
        self.degraded = Gauge(
            "gpumod_degraded_services", "services in crash-loop backoff (degraded)", ["pod"], registry=r
        )
        self.up = Gauge("gpumod_pod_up", "1 when the pod could be observed in the last pass", ["pod"], registry=r)
        since = Gauge(
            "gpumod_seconds_since_last_converged_pass",
            "seconds since the last pass that converged (since watch started, before the first)",
            registry=r,
        )
        since.set_function(lambda: self._clock() - self._last_converged)
        for outcome in ("converged", "not_converged", "error"):
            self.passes.labels(outcome)  # every outcome is exported from the start, at 0

    def serve(self, port: int) -> Callable[[], None]:
        """Serve /metrics on 127.0.0.1:port in a thread; the function that stops it."""
        try:
            server, thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as err:
            raise GpumodError(
                f"cannot serve metrics on 127.0.0.1:{port}: {err.strerror or err}",
                hint="pick a free port with --metrics-port",
            ) from None

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop

    def reporter(self, inner: Reporter) -> Reporter:
        """``inner``, also counting every step as it ends."""
        return _CountingReporter(inner, self)

    def record_pass(self, result: ApplyResult | None, seconds: float) -> None:
        """One watch pass: its outcome and duration, and the state of the pods it last saw."""
        self.pass_seconds.observe(seconds)
        if result is None:
            self.passes.labels("error").inc()
            return
        converged = result.converged and not result.problems
        self.passes.labels("converged" if converged else "not_converged").inc()
        if converged:
            self._last_converged = self._clock()
        if result.final is not None:
            self._record_snapshot(result.final)

    def _record_snapshot(self, snap: Any) -> None:
        plan: Plan = snap.plan
        for obs in snap.observed:
            self.up.labels(obs.name).set(1 if obs.reachable else 0)
            if not obs.reachable:
                continue
            for gpu in obs.gpus:
                self.vram_used.labels(obs.name, str(gpu.index)).set(gpu.used_mb * MIB)
                self.vram_total.labels(obs.name, str(gpu.index)).set(gpu.total_mb * MIB)
            counts = dict.fromkeys(STATES, 0)
            for svc in obs.services:
                counts[svc.status] = counts.get(svc.status, 0) + 1
            desired = snap.desired_pod(obs.name)
            seen = {s.name for s in obs.services}
            counts["absent"] = sum(1 for s in (desired.services if desired else ()) if s.name not in seen)
            for state, n in counts.items():
                self.services.labels(obs.name, state).set(n)
            pod_plan = plan.pod(obs.name)
            self.degraded.labels(obs.name).set(len(pod_plan.deferred) if pod_plan else 0)


class _CountingReporter:
    """Counts every step as it ends, and passes every event on."""

    def __init__(self, inner: Reporter, metrics: WatchMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def event(self, e: Event) -> None:
        if isinstance(e, StepFinished):
            self.metrics.steps.labels(e.pod, e.outcome.step.action, e.outcome.status).inc()
        self.inner.event(e)
