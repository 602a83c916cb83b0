"""``status``: every figure a face shows about a pod's services, computed once.

Why a module of its own: the CLI table, its JSON, the MCP ``gpu_mode_status`` and the TUI table
must show the same VRAM used/budget, the same degraded verdict and the same "why not running"
note; a face that did its own arithmetic would drift. ``StatusResult.to_json`` is the JSON shape
every face returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gpumod.core.model import GpuInfo
from gpumod.ops.snapshot import Snapshot, snapshot

__all__ = ["PodStatus", "ServiceStatus", "StatusResult", "since_text", "status", "status_of"]


_STATE_STYLE = {
    "running": "green",
    "sleeping": "cyan",
    "starting": "yellow",
    "unhealthy": "red",
    "failed": "red",
    "stopped": "dim",
    "absent": "dim",
}


@dataclass(frozen=True)
class ServiceStatus:
    """One service on one pod: desired, observed, or both."""

    service: str
    state: str  # observed status, or "absent"
    target: str  # desired target, or "not in mode"
    sleep_level: str | None
    gpus: tuple[int, ...]
    vram_used_mb: int
    vram_budget_mb: int | None  # None: not desired here
    port: int | None
    pid: int | None
    since: float | None  # when it started (epoch seconds)
    message: str
    degraded: bool  # a desired service whose starts keep failing
    failures: int
    last_failure_at: float | None
    last_error: str
    last_log_line: str
    retry_at: float | None
    deferred: str  # why the plan leaves it alone for now
    note: str  # why it is not as wanted, for a person ("" when it is)

    @property
    def state_label(self) -> str:
        """The state column: ``degraded``, or the state with its sleep level (``sleeping (l1)``)."""
        return "degraded" if self.degraded else self.state + (f" ({self.sleep_level})" if self.sleep_level else "")

    @property
    def state_style(self) -> str:
        """The rich style the faces give the state column (a name; nothing here renders)."""
        return "red" if self.degraded else _STATE_STYLE.get(self.state, "")

    @property
    def vram_text(self) -> str:
        """VRAM used/budget as the tables show it: ``8000/8192 MiB``, ``0/- MiB`` when not desired."""
        budget = "-" if self.vram_budget_mb is None else str(self.vram_budget_mb)
        return f"{self.vram_used_mb}/{budget} MiB"

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "state": self.state,
            "target": self.target,
            "sleep_level": self.sleep_level,
            "gpus": list(self.gpus),
            "vram_used_mb": self.vram_used_mb,
            "vram_budget_mb": self.vram_budget_mb,
            "port": self.port,
            "pid": self.pid,
            "since": self.since,
            "message": self.message,
            "degraded": self.degraded,
            "failures": self.failures,
            "last_failure_at": self.last_failure_at,
            "last_error": self.last_error,
            "last_log_line": self.last_log_line,
            "retry_at": self.retry_at,
            "deferred": self.deferred,
        }


@dataclass(frozen=True)
class PodStatus:
    pod: str
    mode: str
    host: str
    reachable: bool
    error: str
    gpus: tuple[GpuInfo, ...]  # observed, else declared
    services: tuple[ServiceStatus, ...]
    changes_pending: int
    fits: bool = True  # False: the pod's mode does not fit its GPUs (nothing is planned; see `plan`)

    @property
    def why_unreachable(self) -> str:
        """``error`` without its leading ``pod NAME:``, for lines that already name the pod."""
        return self.error.removeprefix(f"pod {self.pod}: ")

    def service(self, name: str) -> ServiceStatus | None:
        return next((s for s in self.services if s.service == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "host": self.host,
            "reachable": self.reachable,
            "error": self.error,
            "gpus": [
                {"index": g.index, "name": g.name, "total_mb": g.total_mb, "used_mb": g.used_mb} for g in self.gpus
            ],
            "services": [s.to_json() for s in self.services],
            "changes_pending": self.changes_pending,
            "fits": self.fits,
        }


@dataclass(frozen=True)
class StatusResult:
    pods: tuple[PodStatus, ...]
    now: float  # the observation time the durations count to
    snapshot: Snapshot

    def pod(self, name: str) -> PodStatus | None:
        return next((p for p in self.pods if p.pod == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"pods": {p.pod: p.to_json() for p in self.pods}}


async def status(spec_dir: str | Path, pod_names: Sequence[str] | None = None) -> StatusResult:
    """Observe and plan the selected pods; what each service is, wants to be, and why not."""
    return status_of(await snapshot(spec_dir, pod_names, provision=False))  # no hub calls, no set-up refusals


def status_of(snap: Snapshot) -> StatusResult:
    """The status rows of a snapshot (pure)."""
    now = max((o.observed_at for o in snap.observed), default=0.0) or time.time()
    pods = []
    for pod in snap.pods:
        desired = snap.desired_pod(pod.name)
        observed = snap.observed_pod(pod.name)
        pod_plan = snap.plan.pod(pod.name)
        names = sorted(
            {s.name for s in (desired.services if desired else ())}
            | {s.name for s in (observed.services if observed else ())}
        )
        deferred = {d.service: d for d in (pod_plan.deferred if pod_plan else ())}
        rows = []
        for name in names:
            want = desired.service(name) if desired else None
            got = observed.service(name) if observed else None
            later = deferred.get(name)
            gpus = tuple(got.gpus if got and got.gpus else (pod_plan.gpus_of(name) if pod_plan else ()))
            used = sum(got.measured(g) for g in gpus) if got else 0
            budget = None
            if want:
                asleep = got is not None and got.status == "sleeping"
                budget = (want.footprint.asleep_mb if asleep else want.footprint.awake_mb) * max(1, len(gpus))
            state = got.status if got else "absent"
            degraded = bool(want and got and got.failures >= 1 and not got.alive)
            failures = got.failures if got else 0
            retry_at = later.retry_at if later else None
            message = got.message if got else ""
            rows.append(
                ServiceStatus(
                    service=name,
                    state=state,
                    target=want.target if want else "not in mode",
                    sleep_level=got.sleep_level if got else None,
                    gpus=gpus,
                    vram_used_mb=used,
                    vram_budget_mb=budget,
                    port=(got.port if got and got.port else (want.spec.port if want else None)),
                    pid=got.pid if got else None,
                    since=got.started_at if got else None,
                    message=message,
                    degraded=degraded,
                    failures=failures,
                    last_failure_at=got.last_failure_at if got else None,
                    last_error=got.last_error if got else "",
                    last_log_line=got.last_log_line if got else "",
                    retry_at=retry_at,
                    deferred=later.reason if later else "",
                    note=_note(degraded, failures, retry_at, later.reason if later else "", message, state, now),
                )
            )
        pod_gpus = observed.gpus if observed and observed.gpus else (desired.gpus if desired else ())
        pods.append(
            PodStatus(
                pod=pod.name,
                mode=pod.mode,
                host=pod.host,
                reachable=observed.reachable if observed else False,
                error=observed.error if observed else "",
                gpus=tuple(pod_gpus),
                services=tuple(rows),
                changes_pending=len(pod_plan.steps) if pod_plan else 0,
                fits=pod_plan.fits if pod_plan else True,
            )
        )
    return StatusResult(tuple(pods), now, snap)


def _note(
    degraded: bool, failures: int, retry_at: float | None, deferred: str, message: str, state: str, now: float
) -> str:
    """Why a service is not as wanted (degraded, deferred, or what the pod said)."""
    if degraded:
        when = "retry at the next apply"
        if retry_at and retry_at > now:
            when = f"retry in {max(1, int(retry_at - now + 0.999))}s"
        return f"{failures} failed start{'s' if failures != 1 else ''}; {when}"
    if deferred:
        return deferred
    if message and state not in ("running", "sleeping"):
        return str(message)
    return ""


def since_text(started_at: float | None, now: float) -> str:
    """How long a service has run, as every status table shows it: ``42s``, ``7m``, ``3h05m``."""
    if not started_at:
        return "-"
    secs = int(max(0, now - started_at))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"
