"""A plan as plain text lines, Terraform-style: steps by phase and wave, then a summary line.

No colours or markup here (the CLI adds them); the golden plan tests diff exactly this text.
GPU lines show how full each GPU will be, without naming services: the bars and the per-service
breakdown belong to ``gpumod status`` / ``simulate`` and to the infeasibility report.
"""

from __future__ import annotations

from itertools import groupby

from gpumod.core.model import Plan, PodPlan
from gpumod.errors import Infeasibility

_PHASE_TITLE = {"provision": "set up", "free": "free VRAM", "fill": "fill"}


def render_plan(plan: Plan) -> list[str]:
    lines: list[str] = []
    for pod in plan.pods:
        lines.extend(render_pod(pod))
    return lines


def render_pod(pod: PodPlan) -> list[str]:
    lines = [f"pod {pod.pod}:"]
    for warning in pod.warnings:
        lines.append(f"  ! warning: {warning}")
    if pod.infeasible is not None:
        lines.append(f"  does not fit: nothing will be touched on pod {pod.pod}")
        lines.extend("  " + line for line in render_infeasible(pod.infeasible))
    for (phase, wave), steps in groupby(pod.steps, key=lambda s: (s.phase, s.wave)):
        lines.append(f"  {_PHASE_TITLE[phase]}:" if phase == "provision" else f"  {_PHASE_TITLE[phase]}, wave {wave}:")
        for step in steps:
            on = f"  [GPU {','.join(map(str, step.gpus))}]" if len(pod.gpus) > 1 and step.gpus else ""
            lines.append(f"    {step.render()}{on}")
    for d in pod.deferred:
        lines.append(f"  ! deferred {d.service}: {d.reason}")
    if pod.infeasible is None:
        for gpu in pod.gpus:
            lines.append(f"  GPU {gpu.index} ({gpu.name}): {gpu.need_mb} of {gpu.capacity_mb} MiB planned")
    lines.append(summary(pod))
    return lines


def summary(pod: PodPlan) -> str:
    if pod.infeasible is not None:
        return f"No changes. Pod {pod.pod} does not fit its mode (see above)."
    if not pod.steps:
        if pod.warnings and pod.warnings[0].startswith("pod unreachable"):
            return f"Not planned: pod {pod.pod} could not be observed."
        return f"No changes. Pod {pod.pod} is up to date."
    restarted = {s.service for s in pod.steps if s.action == "restart"}
    count = {a: 0 for a in ("start", "sleep", "stop", "wake", "restart", "setup", "download")}
    for step in pod.steps:
        if step.action == "stop" and step.service in restarted:
            continue  # the stop half of a restart
        count[step.action] += 1
    provision = ""
    if count["setup"] or count["download"]:
        provision = f"{count['setup']} set-up step(s), {count['download']} download(s), "
    return (
        f"Plan: {provision}{count['start']} to start, {count['sleep']} to sleep, {count['stop']} to stop, "
        f"{count['wake']} to wake, {count['restart']} to restart."
    )


def render_infeasible(inf: Infeasibility) -> list[str]:
    return inf.describe().splitlines()
