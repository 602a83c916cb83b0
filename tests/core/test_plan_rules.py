"""Planner rules the golden scenarios do not pin down one by one: backoff boundaries, the brief
awake peak of a start-then-sleep, sleeping a standby member to make room, the alternatives hook,
ordering details, fingerprints and rendering."""

from __future__ import annotations

from dataclasses import replace

from gpumod.core.model import (
    DesiredPod,
    DesiredService,
    Footprint,
    GpuInfo,
    ObservedPod,
    ObservedService,
    fingerprint,
)
from gpumod.core.ordering import waves
from gpumod.core.plan import backoff_s, plan
from gpumod.core.render import render_infeasible, render_plan
from gpumod.spec.resolved import ResolvedService

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)


def svc(
    name: str, awake: int, *, asleep: int = 300, sleep: str = "l1", target: str = "active", **spec
) -> DesiredService:
    resolved = ResolvedService(name=name, driver="vllm", port=8000 + len(name), sleep=sleep, **spec)
    return DesiredService(name, target, resolved, Footprint(awake, awake if sleep == "none" else asleep))


def pod(*services: DesiredService, gpus=(GPU,), max_awake: int = 1, reserve: int = 512) -> DesiredPod:
    return DesiredPod("box", "m", tuple(gpus), reserve, max_awake, services)


def seen(s: DesiredService, status: str = "running", **kw) -> ObservedService:
    return ObservedService(s.name, status, kw.pop("spec_hash", s.spec_hash), kw.pop("gpus", (0,)), **kw)


def observed(*services: ObservedService, gpus=(GPU,), at: float = 1000.0) -> ObservedPod:
    return ObservedPod("box", gpus=tuple(gpus), services=services, observed_at=at)


def test_backoff_doubles_from_5_s_and_is_capped_at_60_s() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]
    assert backoff_s(10_000) == 60


def test_crash_loop_boundary_defers_until_exactly_the_retry_time() -> None:
    chat = svc("chat", 1000)
    waiting = plan([pod(chat)], [observed(seen(chat, "failed", failures=2, last_failure_at=991.0))])
    box = waiting.pod("box")
    assert box.steps == () and box.deferred[0].retry_at == 1001.0
    assert box.deferred[0].reason == "crash-looping (2 failed starts); retry after 1s"
    due = plan([pod(chat)], [observed(seen(chat, "failed", failures=2, last_failure_at=990.0))])
    assert [(s.action, s.reason) for s in due.pod("box").steps] == [("start", "crashed")]


def test_a_start_then_sleep_is_priced_at_its_awake_peak() -> None:
    # end state fits (15000 + 300 + 512), but the sleeping member must load awake first: 15000 + 12000 + 512
    running, sleeper = svc("chat", 15000, sleep="none"), svc("big", 12000, target="sleeping")
    result = plan([pod(running, sleeper)], [observed(seen(running))])
    box = result.pod("box")
    assert not box.fits and box.steps == ()
    (short,) = box.infeasible.shortfalls
    assert short.need_mb == 27512 and short.over_mb == 27512 - 24564
    assert ("while big starts awake before it sleeps", 27512 - 15812) in short.users
    assert any(a.text.startswith("drop big") for a in box.infeasible.alternatives)


def test_a_start_then_sleep_goes_first_when_nothing_forces_an_order() -> None:
    # from nothing, the sleeper starts (and sleeps) before the big active member: peak 19100 + 512
    glm, chat = svc("glm", 19100, target="sleeping"), svc("chat", 14000)
    box = plan([pod(glm, chat)], [observed()]).pod("box")
    assert box.fits
    assert [(s.service, s.wave, s.sleep_after) for s in box.steps] == [("glm", 1, True), ("chat", 2, False)]
    assert box.gpus[0].need_mb == 19612  # the peak while glm loads, above the end state 14000 + 300 + 512


def test_an_awake_standby_member_sleeps_first_to_make_room_for_a_serial_start() -> None:
    awake_one, newcomer = svc("a-rerank", 8000, target="standby"), svc("b-hyde", 6000, target="standby")
    box = plan([pod(awake_one, newcomer)], [observed(seen(awake_one))]).pod("box")
    assert box.fits
    assert [s.render() for s in box.steps] == [
        "z sleep l1 a-rerank: standby: makes room to start b-hyde",
        "+ start b-hyde (then sleep l1): not running",
    ]
    assert box.gpus[0].need_mb == 300 + 300 + 7700 + 512  # residuals + the largest wake-up + reserve


def test_a_service_that_cannot_sleep_is_kept_awake_with_a_warning() -> None:
    asr = svc("asr", 2000, sleep="none", target="sleeping")
    box = plan([pod(asr)], [observed()]).pod("box")
    assert [(s.action, s.sleep_after) for s in box.steps] == [("start", False)]
    assert box.warnings == ("asr cannot sleep (sleep: none): kept awake although sleeping in mode m",)


def test_unhealthy_and_starting_services_get_no_step() -> None:
    a, b = svc("a", 1000), svc("b", 1000)
    box = plan([pod(a, b)], [observed(seen(a, "unhealthy", message="/health answered 500"), seen(b, "starting"))])
    assert box.pod("box").steps == ()
    assert box.pod("box").warnings == ("a is unhealthy: /health answered 500",)


def test_smaller_preset_hook_and_move_to_another_gpu_are_offered() -> None:
    gpus = (GPU, replace(GPU, index=1))
    big, chat = svc("big", 20000, sleep="none"), svc("chat", 6000, sleep="none")
    obs = observed(seen(big), seen(chat), gpus=gpus)
    box = plan([pod(big, chat, gpus=gpus)], [obs], smaller={"chat": ("chat-small", 2000)}).pod("box")
    texts = [a.text for a in box.infeasible.alternatives]
    assert "use preset chat-small for chat (2000 MiB awake): saves 4000 MiB" in texts
    assert "pin chat to GPU 1 (has 24052 MiB free): saves 6000 MiB" in texts
    assert box.infeasible.alternatives == tuple(
        sorted(box.infeasible.alternatives, key=lambda a: (-a.saves_mb, a.text))
    )


def test_tensor_parallel_beyond_the_pods_gpus_is_a_shortfall_on_an_absent_gpu() -> None:
    huge = svc("huge", 1000, sleep="none", gpu_count=2)
    box = plan([pod(huge)], [observed()]).pod("box")
    assert not box.fits
    assert [(s.gpu, s.gpu_name, s.capacity_mb) for s in box.infeasible.shortfalls] == [(1, "not present", 0)]


def test_pods_are_matched_by_name_and_unknown_observed_pods_are_left_alone() -> None:
    a = svc("a", 1000)
    result = plan([pod(a)], [replace(observed(seen(a)), name="elsewhere")])
    assert [p.pod for p in result.pods] == ["box"]
    assert [s.action for s in result.pod("box").steps] == ["start"]  # no observation of box: treated as empty


def test_fingerprint_is_the_observed_states_and_ignores_gpu_order() -> None:
    a = svc("a", 1000)
    gpus = (GPU, replace(GPU, index=1))
    obs = observed(seen(a), gpus=gpus)
    assert plan([pod(a, gpus=gpus)], [obs]).fingerprint == fingerprint((obs,))
    shuffled = replace(obs, gpus=gpus[::-1])
    assert plan([pod(a, gpus=gpus)], [shuffled]).fingerprint == fingerprint((obs,))


def test_waves_serialise_sleep_after_steps_and_break_cycles() -> None:
    deps = {"app": ["db"], "db": [], "s1": [], "s2": ["db"]}
    assert waves(deps, deps, serial={"s1", "s2"}) == {"s1": 1, "db": 2, "s2": 3, "app": 4}
    assert waves(["x", "y"], {"x": ["y"], "y": ["x"]}) == {"x": 1, "y": 2}


def test_render_counts_a_restart_once_and_lists_the_infeasibility() -> None:
    a = svc("a", 1000)
    text = render_plan(plan([pod(a)], [observed(seen(a, spec_hash="old"))]))
    assert text[-1] == "Plan: 0 to start, 0 to sleep, 0 to stop, 0 to wake, 1 to restart."
    big = svc("big", 30000, sleep="none")
    inf = plan([pod(big)], [observed()]).pod("box").infeasible
    lines = render_infeasible(inf)
    assert lines[0] == "pod box: GPU 0 (NVIDIA GeForce RTX 4090) needs 30512 MiB of 24564 MiB: 5948 MiB over"
    assert "alternatives:" in lines[-2]


def test_plan_json_lists_steps_in_execution_order() -> None:
    old, new = svc("b-old", 1000), svc("a-new", 1000)
    result = plan([pod(new)], [observed(seen(old))])
    data = result.to_json()
    assert [(s["action"], s["service"], s["phase"]) for s in data["pods"]["box"]["steps"]] == [
        ("stop", "b-old", "free"),
        ("start", "a-new", "fill"),
    ]
    assert data["changes"] == 2
