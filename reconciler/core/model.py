"""The values the pure core works on: desired state, observed state, and the plan.

All frozen dataclasses, all MiB, GPU indices as nvidia-smi numbers them. Nothing here does I/O;
the observer builds ``ObservedPod`` from what a pod printed, ``gpumod.core.desired`` builds
``DesiredPod`` from the specs, and ``gpumod.core.plan.plan`` turns the two into a ``Plan``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gpumod.errors import Infeasibility
from gpumod.spec.resolved import ResolvedService

Target = Literal["active", "sleeping", "standby"]
Status = Literal["starting", "running", "sleeping", "unhealthy", "failed", "stopped"]
Action = Literal["start", "stop", "restart", "sleep", "wake", "setup", "download"]
Phase = Literal["provision", "free", "fill"]  # provision: set-up and downloads (gpumod.provision), first

SYMBOLS: dict[str, str] = {
    "start": "+", "stop": "-", "restart": "~", "sleep": "z", "wake": "^", "setup": "⚙", "download": "↓",
}


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_mb: int
    used_mb: int = 0
    uuid: str = ""


@dataclass(frozen=True)
class Footprint:
    """VRAM of one service on each of its GPUs: awake, and while asleep (its residual)."""

    awake_mb: int
    asleep_mb: int

    @property
    def wake_delta_mb(self) -> int:
        return self.awake_mb - self.asleep_mb


@dataclass(frozen=True)
class DesiredService:
    name: str
    target: Target
    spec: ResolvedService
    footprint: Footprint

    @property
    def spec_hash(self) -> str:
        return self.spec.spec_hash()


@dataclass(frozen=True)
class DesiredPod:
    name: str
    mode: str
    gpus: tuple[GpuInfo, ...]  # capacities: declared (sim) or observed
    reserve_mb: int
    max_awake: int
    services: tuple[DesiredService, ...]
    down: bool = False  # `gpumod down`: nothing is desired, whatever the mode says

    def service(self, name: str) -> DesiredService | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass(frozen=True)
class ObservedService:
    """A gpumod-managed service as found on the pod (its metadata lives on the pod)."""

    name: str
    status: Status
    spec_hash: str = ""
    gpus: tuple[int, ...] = ()
    pid: int | None = None
    port: int | None = None
    started_at: float | None = None
    sleep_level: str | None = None  # "l1" | "l2" | "router" when asleep
    vram_mb: tuple[tuple[int, int], ...] = ()  # measured (gpu index, MiB) of its processes
    failures: int = 0  # consecutive failed starts recorded on the pod
    last_failure_at: float | None = None
    message: str = ""
    last_error: str = ""  # why the last failed start failed ("not healthy after 6 s (...)")
    last_log_line: str = ""  # the last line that start printed
    spec_fields: tuple[tuple[str, str], ...] = ()  # (field, digest) of the spec it was started from
    depends_on: tuple[str, ...] = ()  # as recorded when it was started (the old dependency graph)

    @property
    def alive(self) -> bool:
        return self.status in ("starting", "running", "sleeping", "unhealthy")

    def measured(self, gpu: int) -> int:
        return sum(mb for g, mb in self.vram_mb if g == gpu)


@dataclass(frozen=True)
class ObservedPod:
    name: str
    reachable: bool = True
    error: str = ""
    gpus: tuple[GpuInfo, ...] = ()
    services: tuple[ObservedService, ...] = ()
    foreign_mb: tuple[tuple[int, int], ...] = ()  # (gpu index, MiB) used by processes gpumod does not manage
    observed_at: float = 0.0
    init: tuple[tuple[str, Any], ...] = ()  # what runs as PID 1 / whether systemd is usable (agent's report)
    setup: Any = None  # gpumod.drivers.provision.SetupFacts of a pod with setup: (opaque to the core)

    def service(self, name: str) -> ObservedService | None:
        return next((s for s in self.services if s.name == name), None)

    @property
    def why_unreachable(self) -> str:
        """``error`` without its leading ``pod NAME:``, for lines that already name the pod."""
        return self.error.removeprefix(f"pod {self.name}: ")

    def foreign(self, gpu: int) -> int:
        return sum(mb for g, mb in self.foreign_mb if g == gpu)


@dataclass(frozen=True)
class Step:
    pod: str
    action: Action
    service: str
    reason: str
    phase: Phase
    wave: int
    gpus: tuple[int, ...] = ()
    level: str | None = None  # sleep level for "sleep"; level to sleep at right after a start
    sleep_after: bool = False  # start awake, wait healthy, then sleep at `level`
    start_asleep: bool = False  # start with nothing loaded and leave it so (asleep at `level`)
    detail: str = ""  # setup: what it does ("install uv"); download: "org/name (1.2 GB)"

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    def render(self) -> str:
        if self.action == "setup":
            return f"{self.symbol} {self.detail}: {self.reason}"
        if self.action == "download":
            return f"{self.symbol} download {self.detail} for {self.service}: {self.reason}"
        extra = f" (then sleep {self.level})" if self.sleep_after else ""
        extra = f" (asleep: {self.level})" if self.start_asleep else extra
        level = f" {self.level}" if self.action == "sleep" and self.level else ""
        return f"{self.symbol} {self.action}{level} {self.service}{extra}: {self.reason}"


@dataclass(frozen=True)
class GpuBudget:
    """The planned end state of one GPU."""

    index: int
    name: str
    capacity_mb: int
    need_mb: int
    users: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Deferred:
    """A service the plan does not touch this pass, and why (e.g. crash-loop backoff)."""

    service: str
    reason: str
    retry_at: float | None = None


@dataclass(frozen=True)
class FillNeed:
    """Free MiB one GPU must show before a fill wave runs: what the wave's starts and wakes
    allocate there, as the plan priced it (the executor waits for exactly this)."""

    wave: int
    gpu: int
    free_mb: int


@dataclass(frozen=True)
class PodPlan:
    pod: str
    fits: bool
    steps: tuple[Step, ...] = ()
    gpus: tuple[GpuBudget, ...] = ()
    deferred: tuple[Deferred, ...] = ()
    warnings: tuple[str, ...] = ()
    infeasible: Infeasibility | None = None
    placement: tuple[tuple[str, tuple[int, ...]], ...] = ()  # service -> GPUs in the end state
    fill_needs: tuple[FillNeed, ...] = ()  # per fill wave and GPU, the free MiB it needs

    def gpus_of(self, service: str) -> tuple[int, ...]:
        return next((g for s, g in self.placement if s == service), ())

    def need_before(self, wave: int) -> dict[int, int]:
        """GPU -> free MiB that fill wave ``wave`` needs (GPUs it allocates nothing on are absent)."""
        return {n.gpu: n.free_mb for n in self.fill_needs if n.wave == wave}


@dataclass(frozen=True)
class Plan:
    pods: tuple[PodPlan, ...]
    fingerprint: str = ""  # of the observed state the plan was made from

    @property
    def changes(self) -> int:
        return sum(len(p.steps) for p in self.pods)

    @property
    def fits(self) -> bool:
        return all(p.fits for p in self.pods)

    def pod(self, name: str) -> PodPlan | None:
        return next((p for p in self.pods if p.pod == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "pods": {
                p.pod: {
                    "fits": p.fits,
                    "steps": [
                        {
                            "action": s.action,
                            "service": s.service,
                            "reason": s.reason,
                            "wave": s.wave,
                            "phase": s.phase,
                            "gpus": list(s.gpus),
                            "level": s.level,
                            "sleep_after": s.sleep_after,
                            "start_asleep": s.start_asleep,
                            **({"detail": s.detail} if s.detail else {}),
                        }
                        for s in p.steps
                    ],
                    "gpus": [
                        {
                            "index": g.index,
                            "name": g.name,
                            "capacity_mb": g.capacity_mb,
                            "need_mb": g.need_mb,
                            "users": [{"name": n, "mb": mb} for n, mb in g.users],
                        }
                        for g in p.gpus
                    ],
                    "fill_needs": [asdict(n) for n in p.fill_needs],
                    "deferred": [asdict(d) for d in p.deferred],
                    "warnings": list(p.warnings),
                    "infeasible": _infeasible_json(p.infeasible),
                }
                for p in self.pods
            },
            "changes": self.changes,
            "fingerprint": self.fingerprint,
        }


def _infeasible_json(inf: Infeasibility | None) -> dict[str, Any] | None:
    if inf is None:
        return None
    return {
        "shortfalls": [
            {
                "gpu": s.gpu,
                "gpu_name": s.gpu_name,
                "capacity_mb": s.capacity_mb,
                "need_mb": s.need_mb,
                "over_mb": s.over_mb,
                "users": [{"name": n, "mb": mb} for n, mb in s.users],
            }
            for s in inf.shortfalls
        ],
        "alternatives": [{"text": a.text, "saves_mb": a.saves_mb} for a in inf.alternatives],
    }


def fingerprint(observed: tuple[ObservedPod, ...]) -> str:
    """A short digest of what was observed (not when): a saved plan is stale if it changes.

    Covers what a plan depends on and a person can change behind its back: reachability, GPU
    totals, and per service its status, spec hash, GPUs, sleep level, process (pid, start time)
    and failure count — a service killed, or restarted by hand, changes it. Left out: measured
    VRAM and foreign usage, which drift by themselves on a real GPU."""
    data = []
    for pod in sorted(observed, key=lambda p: p.name):
        data.append(
            [
                pod.name,
                pod.reachable,
                [(g.index, g.total_mb) for g in pod.gpus],
                sorted(
                    (s.name, s.status, s.spec_hash, s.gpus, s.sleep_level, s.pid, s.started_at, s.failures)
                    for s in pod.services
                ),
            ]
        )
    return hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()[:16]
