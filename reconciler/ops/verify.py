"""``verify``: is a pod converged to its mode (or to the mode an agent expects)? Touches nothing.

Why a module of its own: after a switch, an agent (MCP ``gpu_mode_verify``) or a person wants
one yes/no with the reasons, computed from the same snapshot as ``plan`` and ``status``: the
spec's ``mode:`` is the one expected, and the plan for the pod is empty (nothing to start, stop,
sleep or wake; nothing deferred, starting or infeasible; the pod reached).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gpumod.errors import GpumodError
from gpumod.ops.snapshot import Snapshot, snapshot

__all__ = ["PodVerdict", "VerifyResult", "verify", "verify_of"]


@dataclass(frozen=True)
class PodVerdict:
    pod: str
    mode: str  # the mode the spec names
    expected_mode: str  # the mode asked about (the spec's when none was)
    converged: bool
    changes_pending: int
    reasons: tuple[str, ...]  # why not converged, one line each (empty when converged)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "expected_mode": self.expected_mode,
            "converged": self.converged,
            "changes_pending": self.changes_pending,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class VerifyResult:
    pods: tuple[PodVerdict, ...]
    snapshot: Snapshot

    @property
    def ok(self) -> bool:
        return all(p.converged for p in self.pods)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "pods": {p.pod: p.to_json() for p in self.pods}}


async def verify(spec_dir: str | Path, mode: str | None = None, pod_names: Sequence[str] | None = None) -> VerifyResult:
    """Observe and plan the selected pods; each one's verdict against ``mode`` (or its own)."""
    return verify_of(await snapshot(spec_dir, pod_names), mode)


def verify_of(snap: Snapshot, mode: str | None = None) -> VerifyResult:
    """The verdicts of a snapshot (pure)."""
    if mode is not None and snap.specs.mode(mode) is None:
        raise GpumodError(
            f"mode '{mode}' is not defined",
            hint=f"modes: {', '.join(sorted(m.name for m in snap.specs.modes)) or 'none'}",
        )
    verdicts = []
    for pod in snap.pods:
        expected = mode or pod.mode
        pod_plan = snap.plan.pod(pod.name)
        observed = snap.observed_pod(pod.name)
        reasons: list[str] = []
        if pod.mode != expected:
            reasons.append(f"the specs put pod {pod.name} in mode {pod.mode}, not {expected}")
        if observed is None or not observed.reachable:
            why = observed.why_unreachable if observed else "not observed"
            reasons.append(f"pod {pod.name} cannot be observed: {why}")
        if pod_plan is not None:
            if pod_plan.infeasible is not None:
                reasons.append(f"mode {pod.mode} does not fit the GPUs of pod {pod.name}")
            if pod_plan.steps:
                pending = "; ".join(s.render() for s in pod_plan.steps)
                reasons.append(f"{len(pod_plan.steps)} change(s) pending: {pending}")
            reasons.extend(f"{d.service} is deferred: {d.reason}" for d in pod_plan.deferred)
        starting = [s.name for s in (observed.services if observed else ()) if s.status == "starting"]
        if starting:
            reasons.append(f"still starting: {', '.join(starting)}")
        verdicts.append(
            PodVerdict(
                pod.name, pod.mode, expected, not reasons, len(pod_plan.steps) if pod_plan else 0, tuple(reasons)
            )
        )
    return VerifyResult(tuple(verdicts), snap)
