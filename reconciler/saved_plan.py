"""Saved plans, Terraform's contract: `gpumod plan DIR --out FILE` writes the plan together with
what it was made from; `gpumod apply FILE` runs exactly those steps, or refuses when it is stale.

A saved plan records, besides its steps, the spec directory (absolute) and the pod selection, and
per pod a digest of its desired state (pod spec + resolved services) and a summary of its
observation (the fields ``core.model.fingerprint`` covers). Applying it re-reads both; any
difference is a ``StalePlanError`` naming what changed, before anything is touched. The file is
JSON (a pydantic model at the boundary); this module only reads, compares and writes it — running
it is ``gpumod.ops.apply.apply_saved``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Final, Literal, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from gpumod import __version__
from gpumod.core.model import (
    DesiredPod,
    Deferred,
    GpuBudget,
    FillNeed,
    ObservedPod,
    Plan,
    SYMBOLS,
    PodPlan,
    Step,
    fingerprint,
)
from gpumod.errors import GpumodError
from gpumod.spec.models import PodSpec

FORMAT: Final = "gpumod-saved-plan/1"

__all__ = ["FORMAT", "SavedPlan", "SavedPod", "is_saved_plan", "load_saved_plan", "save_plan"]


class SavedPod(BaseModel):
    """What one pod's part of the plan was made from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: str
    desired_digest: str
    fingerprint: str
    observed: dict[str, Any]


class SavedPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["gpumod-saved-plan/1"]
    gpumod_version: str
    created_at: float
    spec_dir: str
    pods: list[str] | None
    fingerprint: str
    made_from: dict[str, SavedPod]
    plan: dict[str, Any]

    def to_plan(self) -> Plan:
        """The saved plan as the value the executor runs."""
        return plan_from_json(self.plan)

    def model_post_init(self, _context: Any) -> None:
        try:
            plan = self.to_plan()
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"its plan cannot be read: {err!r}") from None
        for pod_plan in plan.pods:
            if pod_plan.pod not in self.made_from:
                raise ValueError(f"its plan has steps for pod {pod_plan.pod}, which it was not made from")
            for step in pod_plan.steps:
                if step.action not in SYMBOLS or step.phase not in ("free", "fill"):
                    raise ValueError(f"unknown step {step.action!r} ({step.phase!r}) for {step.service}")

    def changes_since(
        self, pod_specs: Sequence[PodSpec], desired: Sequence[DesiredPod], observed: Sequence[ObservedPod]
    ) -> list[str]:
        """What differs between what the plan was made from and now: one line per change."""
        now = {p.name: p for p in pod_specs}
        changes: list[str] = []
        for name in sorted(set(now) - set(self.made_from)):
            changes.append(f"pod {name}: not in the saved plan (the specs added it)")
        for name, then in sorted(self.made_from.items()):
            spec = now.get(name)
            if spec is None:
                changes.append(f"pod {name}: no longer in the specs")
                continue
            want = next((d for d in desired if d.name == name), None)
            if desired_digest(spec, want) != then.desired_digest:
                mode = f" (mode {then.mode} → {spec.mode})" if spec.mode != then.mode else ""
                changes.append(f"pod {name}: its specs changed since the plan was made{mode}")
            seen = next((o for o in observed if o.name == name), None)
            if seen is None or fingerprint((seen,)) != then.fingerprint:
                changes.extend(
                    f"pod {name}: {line}" for line in _observation_diff(then.observed, _summary(seen, name))
                )
        return changes


def desired_digest(spec: PodSpec, desired: DesiredPod | None) -> str:
    """A digest of one pod's desired state: its Pod document and every resolved service."""
    data: dict[str, Any] = {"pod": spec.model_dump(mode="json")}
    if desired is not None:
        data["desired"] = {
            "mode": desired.mode,
            "gpus": [(g.index, g.name, g.total_mb) for g in desired.gpus],
            "reserve_mb": desired.reserve_mb,
            "max_awake": desired.max_awake,
            "services": sorted(
                (s.name, s.target, s.spec_hash, s.footprint.awake_mb, s.footprint.asleep_mb, list(s.spec.depends_on))
                for s in desired.services
            ),
        }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _summary(pod: ObservedPod | None, name: str) -> dict[str, Any]:
    """The observation fields the fingerprint covers, readable (to say what changed)."""
    if pod is None:
        return {"reachable": False, "error": "not observed", "gpus": [], "services": {}}
    return {
        "reachable": pod.reachable,
        "error": pod.error if not pod.reachable else "",
        "gpus": [[g.index, g.total_mb] for g in sorted(pod.gpus, key=lambda g: g.index)],
        "services": {
            s.name: {
                "status": s.status,
                "pid": s.pid,
                "started_at": s.started_at,
                "spec_hash": s.spec_hash,
                "sleep_level": s.sleep_level,
                "gpus": list(s.gpus),
                "failures": s.failures,
            }
            for s in sorted(pod.services, key=lambda s: s.name)
        },
    }


def _describe(svc: dict[str, Any] | None) -> str:
    if svc is None:
        return "absent"
    text = str(svc.get("status"))
    if svc.get("sleep_level"):
        text += f" ({svc['sleep_level']})"
    if svc.get("pid"):
        text += f" (pid {svc['pid']} gone)" if svc.get("status") in ("failed", "stopped") else f", pid {svc['pid']}"
    return text


def _observation_diff(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if then.get("reachable") != now.get("reachable"):
        lines.append(
            "reachable again" if now.get("reachable") else f"cannot be reached now: {now.get('error') or 'unknown'}"
        )
        return lines
    if then.get("gpus") != now.get("gpus"):
        lines.append(f"its GPUs changed ({then.get('gpus')} → {now.get('gpus')})")
    old, new = then.get("services") or {}, now.get("services") or {}
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a and b and _describe(a) == _describe(b):
            what = [k for k in ("started_at", "spec_hash", "gpus", "failures") if a.get(k) != b.get(k)]
            lines.append(f"{name}: {', '.join(what)} changed")
        else:
            lines.append(f"{name} was {_describe(a)}, is now {_describe(b)}")
    return lines or ["its observation changed"]


def save_plan(
    path: str | Path,
    *,
    spec_dir: str | Path,
    pod_names: Sequence[str] | None,
    pod_specs: Sequence[PodSpec],
    desired: Sequence[DesiredPod],
    observed: Sequence[ObservedPod],
    plan: Plan,
) -> SavedPlan:
    """Write the plan and what it was made from to ``path`` (atomically); the saved value."""
    made_from = {}
    for spec in pod_specs:
        seen = next((o for o in observed if o.name == spec.name), None)
        want = next((d for d in desired if d.name == spec.name), None)
        made_from[spec.name] = SavedPod(
            mode=spec.mode,
            desired_digest=desired_digest(spec, want),
            fingerprint=fingerprint((seen,)) if seen else "",
            observed=_summary(seen, spec.name),
        )
    saved = SavedPlan(
        format=FORMAT,
        gpumod_version=__version__,
        created_at=time.time(),
        spec_dir=str(Path(spec_dir).resolve()),
        pods=list(pod_names) if pod_names else None,
        fingerprint=plan.fingerprint,
        made_from=made_from,
        plan=plan.to_json(),
    )
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(saved.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, target)
    return saved


def is_saved_plan(path: str | Path) -> bool:
    """Is this argument a saved plan file (rather than a spec directory or YAML file)?"""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and FORMAT.encode() in head


def load_saved_plan(path: str | Path) -> SavedPlan:
    try:
        saved = SavedPlan.model_validate(json.loads(Path(path).read_text()))
    except ValidationError as err:
        first_error = err.errors()[0]
        where = ".".join(str(x) for x in first_error.get("loc", ()))
        first = f"{where + ': ' if where else ''}{first_error.get('msg', 'invalid')}"
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    else:
        return saved
    raise GpumodError(
        f"{path}: not a readable saved plan ({first})",
        hint="make one with `gpumod plan DIR --out FILE`",
    )


def plan_from_json(data: dict[str, Any]) -> Plan:
    """The inverse of ``Plan.to_json`` for a plan that fits (saved plans always do)."""
    pods = []
    for name, p in sorted(data.get("pods", {}).items()):
        steps = tuple(
            Step(
                pod=name,
                action=s["action"],
                service=s["service"],
                reason=s["reason"],
                phase=s["phase"],
                wave=int(s["wave"]),
                gpus=tuple(s.get("gpus") or ()),
                level=s.get("level"),
                sleep_after=bool(s.get("sleep_after")),
                start_asleep=bool(s.get("start_asleep")),
            )
            for s in p.get("steps", [])
        )
        gpus = tuple(
            GpuBudget(
                g["index"], g["name"], g["capacity_mb"], g["need_mb"],
                tuple((u["name"], u["mb"]) for u in g.get("users", [])),
            )
            for g in p.get("gpus", [])
        )
        deferred = tuple(Deferred(**d) for d in p.get("deferred", []))
        # what the executor waits for before each fill wave: without it, it would not wait at all
        needs = tuple(FillNeed(int(n["wave"]), int(n["gpu"]), int(n["free_mb"])) for n in p.get("fill_needs", []))
        pods.append(
            PodPlan(
                name, bool(p.get("fits", True)), steps, gpus, deferred, tuple(p.get("warnings", [])),
                fill_needs=needs,
            )
        )
    return Plan(tuple(pods), str(data.get("fingerprint", "")))
