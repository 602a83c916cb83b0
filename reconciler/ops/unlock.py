"""``unlock``: break a pod's lock left by a gpumod run that is gone (see ``gpumod.wiring.unlock_pod``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from gpumod.ops.snapshot import select_pods
from gpumod.spec import load_specs
from gpumod.wiring import unlock_pod

__all__ = ["UnlockResult", "unlock"]


@dataclass(frozen=True)
class UnlockResult:
    pod: str
    was_locked: bool = False
    killed: bool = False
    refused: bool = False  # held right now, and the caller did not agree to break it
    owner: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod, "was_locked": self.was_locked, "killed": self.killed,
            "refused": self.refused, "owner": dict(self.owner),
        }


async def unlock(
    spec_dir: str | Path, pod_name: str, *, confirm: Callable[[dict], bool] = lambda owner: True
) -> UnlockResult:
    """Break a pod's lock; one held right now is broken only if ``confirm(owner)`` agrees."""
    specs = load_specs(spec_dir)
    (pod,) = select_pods(specs, [pod_name])
    found = await unlock_pod(pod, confirm=confirm)
    return UnlockResult(
        pod_name, bool(found.get("was_locked")), bool(found.get("killed")), bool(found.get("refused")),
        dict(found.get("owner") or {}),
    )
