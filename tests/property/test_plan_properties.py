"""Properties of the pure planner on random pods (docs/design.md, "The plan (pure)", rules 4, 5 and 8):

(a) no prefix of the executed plan exceeds any GPU, (b) plan → execute → plan is empty,
(c) the plan does not depend on input order, (d) every step has a reason and an infeasible
pod has no steps. The pods are random: 1–4 GPUs, up to 12 services with random footprints,
sleep kinds, targets, acyclic dependencies, pins, drift policies and observed states.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod, ObservedService, PodPlan
from gpumod.core.plan import plan
from gpumod.spec.resolved import ResolvedService
from plan_sim import apply, peaks

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1000.0


@st.composite
def services(draw, n_gpus: int) -> tuple[tuple[DesiredService, ...], dict[str, int]]:
    n = draw(st.integers(0, 12))
    names = [f"s{i:02d}" for i in range(n)]
    out, versions = [], {}
    for i, name in enumerate(names):
        sleep = draw(st.sampled_from(["none", "l1", "l2", "router"]))
        target = draw(st.sampled_from(["active", "active", "sleeping", "standby", "standby"]))
        awake = draw(st.integers(0, 14000))
        asleep = awake if sleep == "none" else draw(st.integers(0, min(awake, 1500)))
        deps = draw(st.lists(st.sampled_from(names[:i]), max_size=3, unique=True)) if i else []
        kind = draw(st.sampled_from(["one", "one", "one", "tp", "pin"]))
        count, pinned = 1, None
        if kind == "tp" and n_gpus > 1:
            count = draw(st.integers(2, n_gpus))
        elif kind == "pin":
            pinned = tuple(sorted(draw(st.lists(st.integers(0, n_gpus - 1), min_size=1, max_size=2, unique=True))))
            count = len(pinned)
        version = draw(st.integers(1, 2))
        versions[name] = version
        spec = ResolvedService(
            name=name, driver="vllm", port=8000 + i, sleep=sleep, gpu_count=count, pinned_gpus=pinned,
            depends_on=tuple(deps), drift=draw(st.sampled_from(["correct"] * 4 + ["warn", "ignore"])),
            extra=(("version", version),),
        )
        out.append(DesiredService(name, target, spec, Footprint(awake, asleep)))
    return tuple(out), versions


@st.composite
def observed_service(draw, svc: DesiredService, version: int, n_gpus: int) -> ObservedService | None:
    statuses = ["absent", "running", "running", "running", "starting", "unhealthy", "failed", "stopped"]
    if svc.spec.sleep != "none":
        statuses += ["sleeping", "sleeping"]
    status = draw(st.sampled_from(statuses))
    if status == "absent":
        return None
    spec_hash = replace(svc.spec, extra=(("version", draw(st.sampled_from([version, version, 3]))),)).spec_hash()
    count = draw(st.integers(1, min(2, n_gpus)))
    gpus = tuple(draw(st.lists(st.integers(0, n_gpus - 1), min_size=count, max_size=count, unique=True)))
    vram = ()
    if status == "running" and draw(st.booleans()):
        vram = tuple((g, draw(st.integers(0, 16000))) for g in gpus)
    failures = draw(st.integers(0, 4)) if status == "failed" else 0
    return ObservedService(
        name=svc.name, status=status, spec_hash=spec_hash, gpus=gpus, vram_mb=vram, failures=failures,
        last_failure_at=NOW - draw(st.integers(0, 90)) if failures else None,
        sleep_level=svc.spec.sleep if status == "sleeping" else None,
    )


@st.composite
def pods(draw, name: str) -> tuple[DesiredPod, ObservedPod]:
    n_gpus = draw(st.integers(1, 4))
    gpus = tuple(GpuInfo(i, "GPU", draw(st.sampled_from([8192, 16384, 24564, 40960]))) for i in range(n_gpus))
    members, versions = draw(services(n_gpus))
    desired = DesiredPod(name, "m", gpus, draw(st.integers(0, 1024)), draw(st.integers(0, 2)), members)
    if not draw(st.integers(0, 15)):
        return desired, ObservedPod(name, reachable=False, error="connection refused")
    seen = [draw(observed_service(s, versions[s.name], n_gpus)) for s in members]
    for k in range(draw(st.integers(0, 2))):
        status = draw(st.sampled_from(["running", "sleeping", "failed", "stopped"]))
        seen.append(ObservedService(f"x{k}", status, "f00", (draw(st.integers(0, n_gpus - 1)),)))
    foreign = tuple((g, draw(st.integers(0, 3000))) for g in range(n_gpus) if draw(st.booleans()))
    observed = ObservedPod(
        name, gpus=gpus if draw(st.booleans()) else (), services=tuple(s for s in seen if s),
        foreign_mb=foreign, observed_at=NOW,
    )
    return desired, observed


@st.composite
def worlds(draw) -> tuple[tuple[DesiredPod, ...], tuple[ObservedPod, ...]]:
    pairs = [draw(pods(f"pod{i}")) for i in range(draw(st.integers(1, 2)))]
    return tuple(d for d, _ in pairs), tuple(o for _, o in pairs)


def executed(world) -> Iterator[tuple[DesiredPod, ObservedPod, PodPlan]]:
    """The pods of a world that the executor would run: their plan fits and they can be reached."""
    desired, observed = world
    result = plan(desired, observed)
    for pod, seen in zip(desired, observed):
        pod_plan = result.pod(pod.name)
        if pod_plan.fits and seen.reachable:
            yield pod, seen, pod_plan


@SETTINGS
@given(worlds())
def test_no_prefix_of_the_executed_plan_exceeds_any_gpu(world) -> None:
    for pod, seen, pod_plan in executed(world):
        budget = {b.index: b.need_mb for b in pod_plan.gpus}
        for n, used in enumerate(peaks(pod, seen, pod_plan)):
            for g in seen.gpus or pod.gpus:
                fixed = pod.reserve_mb + seen.foreign(g.index)
                when = "phase free" if n == 0 else f"fill wave {n}"
                held = used.get(g.index, 0)
                assert held <= g.total_mb - fixed, f"{pod.name} GPU {g.index} over capacity after {when}"
                # stronger: never beyond what the plan budgeted (rule 4), however much slack there is
                assert held + fixed <= budget[g.index], (
                    f"{pod.name} GPU {g.index} holds {held} + {fixed} > budget {budget[g.index]} MiB after "
                    f"{when}: {[s.render() for s in pod_plan.steps]}"
                )


@SETTINGS
@given(worlds())
def test_plan_then_execute_then_plan_is_empty(world) -> None:
    desired, observed = world
    first = plan(desired, observed)
    after = tuple(
        apply(pod, seen, first.pod(pod.name)) if seen.reachable else seen for pod, seen in zip(desired, observed)
    )
    second = plan(desired, after)
    assert second.changes == 0, [s.render() for p in second.pods for s in p.steps]
    for pod, seen in zip(desired, after):
        standby = {s.name for s in pod.services if s.target == "standby" and s.spec.sleep != "none"}
        awake = [s.name for s in seen.services if s.name in standby and s.status == "running"]
        assert len(awake) <= max(0, pod.max_awake) or not first.pod(pod.name).fits or not seen.reachable
    assert [p.fits for p in second.pods] == [p.fits for p in first.pods]


def _shuffled(rng: random.Random, items: tuple) -> tuple:
    items = list(items)
    rng.shuffle(items)
    return tuple(items)


@SETTINGS
@given(worlds(), st.randoms(use_true_random=False))
def test_input_order_does_not_change_the_plan(world, rng) -> None:
    desired, observed = world
    mixed_desired = _shuffled(
        rng, tuple(replace(d, services=_shuffled(rng, d.services), gpus=_shuffled(rng, d.gpus)) for d in desired)
    )
    mixed_observed = _shuffled(
        rng,
        tuple(
            replace(
                o,
                services=_shuffled(rng, tuple(replace(s, vram_mb=_shuffled(rng, s.vram_mb)) for s in o.services)),
                gpus=_shuffled(rng, o.gpus),
                foreign_mb=_shuffled(rng, o.foreign_mb),
            )
            for o in observed
        ),
    )
    assert plan(mixed_desired, mixed_observed) == plan(desired, observed)


@SETTINGS
@given(worlds())
def test_every_step_has_a_reason_and_an_infeasible_pod_has_none(world) -> None:
    desired, observed = world
    result = plan(desired, observed)
    assert [p.pod for p in result.pods] == sorted(d.name for d in desired)
    for pod_plan in result.pods:
        assert all(step.reason.strip() for step in pod_plan.steps)
        assert all(step.pod == pod_plan.pod for step in pod_plan.steps)
        if not pod_plan.fits:
            assert pod_plan.steps == () and pod_plan.infeasible is not None
            assert all(s.need_mb > s.capacity_mb for s in pod_plan.infeasible.shortfalls)
            assert pod_plan.infeasible.shortfalls
        keys = [(s.phase != "free", s.wave, s.action, s.service) for s in pod_plan.steps]
        assert keys == sorted(keys)
        serial_waves = [s.wave for s in pod_plan.steps if s.sleep_after]
        for wave in serial_waves:
            assert [s for s in pod_plan.steps if s.phase == "fill" and s.wave == wave and not s.sleep_after] == []
        assert len(serial_waves) == len(set(serial_waves))
