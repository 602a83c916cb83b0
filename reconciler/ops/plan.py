"""``plan``: what apply would do, and saving it for ``apply FILE``. Touches nothing.

The result says which pods could not be observed (a plan for them cannot be made) so every face
refuses to save or trust such a plan the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from gpumod.core.model import ObservedPod, Plan
from gpumod.errors import GpumodError
from gpumod.logconfig import get_logger
from gpumod.ops.snapshot import Snapshot, snapshot

__all__ = ["PlanResult", "plan", "save"]

log = get_logger("gpumod.ops.plan")


@dataclass(frozen=True)
class PlanResult:
    snapshot: Snapshot

    @property
    def plan(self) -> Plan:
        return self.snapshot.plan

    @property
    def unreachable(self) -> tuple[ObservedPod, ...]:
        return self.snapshot.unreachable

    def to_json(self) -> dict[str, Any]:
        """The plan, and each pod that could not be observed with why (its plan is missing, not empty)."""
        return {**self.plan.to_json(), "unreachable": {o.name: o.error for o in self.unreachable}}


async def plan(spec_dir: str | Path, pod_names: Sequence[str] | None = None) -> PlanResult:
    return PlanResult(await snapshot(spec_dir, pod_names))


def save(result: PlanResult, path: Path, spec_dir: str | Path, pod_names: Sequence[str] | None) -> None:
    """Write the plan with the state it was made from (``gpumod.saved_plan``)."""
    from gpumod.saved_plan import save_plan

    snap = result.snapshot
    provisioning = [p.pod for p in snap.plan.pods if any(s.phase == "provision" for s in p.steps)]
    if provisioning:  # a saved plan holds VRAM steps only: set-up and downloads are not replayable
        raise GpumodError(
            f"the plan has set-up or download steps (pod {', '.join(provisioning)}): it cannot be saved",
            hint=f"run `gpumod apply {spec_dir}` (or `gpumod setup {spec_dir}` first), then save the plan",
        )
    try:
        save_plan(
            path, spec_dir=Path(spec_dir), pod_names=list(pod_names) if pod_names else None, pod_specs=snap.pods,
            desired=snap.desired, observed=snap.observed, plan=snap.plan,
        )
    except OSError as e:
        raise GpumodError(f"cannot write the plan to {path}: {e.strerror or e}", hint="pick a writable path") from None
    log.info("plan.saved", path=str(path), fingerprint=snap.plan.fingerprint)
