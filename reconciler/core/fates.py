"""What happens to each desired service of a pod, before any GPU is considered (rules 1–3, 7).

Compares one desired service with what was observed and decides its ``Fate``: start (absent or
dead), restart (spec hash or pinned GPUs changed, drift policy permitting), sleep or wake (target
vs observed), nothing, or deferred (crash-loop backoff, or waiting for a crash-looping
dependency). Standby members keep their observed state, at most ``max_awake`` of them awake.
Pure; ``gpumod.core.plan`` places, prices and orders the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpumod.core.footprint import STARTS_ASLEEP
from gpumod.core.model import Action, Deferred, DesiredPod, DesiredService, ObservedService, Target
from gpumod.core.ordering import waves

BACKOFF_BASE_S = 5
BACKOFF_CAP_S = 60


@dataclass
class Fate:
    """What the plan does with one desired service (mutable while the pod is planned)."""

    svc: DesiredService
    obs: ObservedService | None
    target: Target  # effective target (a service that cannot sleep is kept active)
    free: tuple[Action, str] | None = None
    fill: tuple[Action, str] | None = None
    end_awake: bool = True
    keep: tuple[int, ...] | None = None  # the GPUs it runs on and stays on
    measured: bool = False  # kept running: its measured VRAM may count
    stuck: bool = False  # awake and the plan cannot put it to sleep (starting / unhealthy)
    deferred: Deferred | None = None
    wake_after: tuple[str, ...] = ()  # slept to make room: its wake waits for these starts

    @property
    def name(self) -> str:
        return self.svc.name

    @property
    def sleep_after(self) -> bool:
        """Started awake, then put to sleep after its health check (a brief awake peak)."""
        return self._starts_to_sleep and self.svc.spec.sleep not in STARTS_ASLEEP

    @property
    def starts_asleep(self) -> bool:
        """Started with nothing loaded and left so (a llama.cpp router): no awake peak."""
        return self._starts_to_sleep and self.svc.spec.sleep in STARTS_ASLEEP

    @property
    def _starts_to_sleep(self) -> bool:
        return self.fill is not None and self.fill[0] in ("start", "restart") and not self.end_awake


def backoff_s(failures: int) -> int:
    """Seconds to wait after the n-th consecutive failed start (5, 10, 20, 40, 60, 60, ...)."""
    return min(int(2 ** (min(max(failures, 1), 8) - 1)) * BACKOFF_BASE_S, BACKOFF_CAP_S)


def decide(
    svc: DesiredService, seen: ObservedService | None, pod: DesiredPod, now: float, warnings: list[str]
) -> Fate:
    spec = svc.spec
    target: Target = svc.target
    if target != "active" and spec.sleep == "none":
        warnings.append(f"{svc.name} cannot sleep (sleep: none): kept awake although {target} in mode {pod.mode}")
        target = "active"
    fate = Fate(svc, seen, target, end_awake=target == "active")
    if seen is None or not seen.alive:
        status = seen.status if seen else None
        if seen is not None and status == "failed" and seen.failures >= 1 and seen.last_failure_at is not None:
            retry_at = seen.last_failure_at + backoff_s(seen.failures)
            if now < retry_at:
                starts = "start" if seen.failures == 1 else "starts"
                wait = math.ceil(retry_at - now)
                if seen.last_error:  # the cause is known: name it (a health timeout is no crash)
                    reason = f"{seen.failures} failed {starts}, last: {seen.last_error}; retry after {wait}s"
                else:
                    reason = f"crash-looping ({seen.failures} failed {starts}); retry after {wait}s"
                fate.deferred = Deferred(svc.name, reason, retry_at)
                return fate
        reason = {None: "not running", "stopped": "process exited", "failed": "crashed"}[status]
        if seen is not None and status == "failed" and seen.last_error:  # a failed start, not a crash
            starts = "start" if seen.failures == 1 else "starts"
            reason = f"retry ({seen.failures} failed {starts}, last: {seen.last_error})"
        fate.fill = ("start", reason)
        return fate
    fate.keep = tuple(dict.fromkeys(seen.gpus)) or None
    if seen.status in ("starting", "unhealthy"):
        fate.end_awake, fate.stuck = True, True
        if seen.status == "unhealthy":
            detail = f": {seen.message}" if seen.message else ""
            warnings.append(f"{svc.name} is unhealthy{detail}")
        return fate
    changed = _changed(svc, seen)
    if changed and spec.drift == "correct":
        fate.free = ("stop", changed[0])
        fate.fill = ("restart", changed[1])
        fate.keep = fate.keep if spec.pinned_gpus is None and len(fate.keep or ()) == spec.gpu_count else None
        return fate
    if changed and spec.drift == "warn":
        warnings.append(f"{svc.name}: {changed[1]}; drift: warn, so it is not restarted")
    awake = seen.status == "running"
    fate.measured = awake
    if target == "active" and not awake:
        fate.fill = ("wake", f"active in mode {pod.mode}")
    elif target == "sleeping" and awake:
        fate.free = ("sleep", f"sleeping in mode {pod.mode}")
        fate.end_awake = False
    elif target == "standby":
        fate.end_awake = awake  # kept as observed; limit_awake_standby may sleep it
    return fate


def _changed(svc: DesiredService, seen: ObservedService) -> tuple[str, str] | None:
    """(stop reason, restart reason) when the running process is not what the spec asks for."""
    new = svc.spec_hash
    if seen.spec_hash != new:
        fields = _changed_fields(svc, seen)
        if fields:
            return f"spec changed: {fields}; restart", f"spec changed: {fields}"
        old = seen.spec_hash or "?"
        return f"spec changed: restart ({old}→{new})", f"spec changed ({old}→{new})"
    pinned = svc.spec.pinned_gpus
    if pinned is not None and seen.gpus and sorted(seen.gpus) != sorted(pinned):
        want, now = _gpu_list(pinned), _gpu_list(seen.gpus)
        return f"pinned to GPU {want}: restart (runs on GPU {now})", f"pinned to GPU {want} (ran on GPU {now})"
    return None


def _changed_fields(svc: DesiredService, seen: ObservedService) -> str:
    """``context, port``: the fields whose digest differs from the one recorded at start ("" when
    the record has none, an older gpumod's, or no field differs)."""
    if not seen.spec_fields:
        return ""
    old, new = dict(seen.spec_fields), svc.spec.field_digests()
    return ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def _gpu_list(gpus: Sequence[int]) -> str:
    return ",".join(str(g) for g in sorted(gpus))


def limit_awake_standby(fates: dict[str, Fate], pod: DesiredPod) -> None:
    """At most ``max_awake`` standby members stay awake: keep the first by name, sleep the rest."""
    awake = [f for f in fates.values() if f.target == "standby" and f.fill is None and f.free is None and f.end_awake]
    for fate in awake[max(0, pod.max_awake) :]:
        if fate.stuck:
            continue  # starting or unhealthy: nothing to sleep yet
        fate.free = ("sleep", f"standby in mode {pod.mode}: at most {pod.max_awake} awake")
        fate.end_awake = False


def defer_dependents(fates: dict[str, Fate]) -> None:
    """A start that needs a crash-looping service waits with it (it would fail anyway)."""
    if not any(f.deferred for f in fates.values()):
        return
    deps = {name: f.svc.spec.depends_on for name, f in fates.items()}
    order = waves(fates, deps)
    root: dict[str, str] = {}  # deferred service -> the crash-looping one it waits for
    for name in sorted(fates, key=lambda n: (order[n], n)):
        fate = fates[name]
        if fate.deferred is not None:
            root.setdefault(name, name)
            continue
        if fate.fill is None or fate.fill[0] != "start":
            continue  # only a service that is not running waits; a running one keeps running
        blocker = next((d for d in sorted(deps[name]) if d in root), None)
        if blocker is not None:
            looping = root[blocker]
            retry_at = fates[looping].deferred.retry_at  # type: ignore[union-attr]
            seen = fates[looping].obs
            what = "is failing to start" if seen is not None and seen.last_error else "is crash-looping"
            fate.deferred = Deferred(name, f"waits for {looping}, which {what}", retry_at)
            fate.fill = None
            root[name] = looping
