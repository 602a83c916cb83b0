"""Golden plan scenarios: each folder under golden/plan/ holds desired.yaml + observed.yaml and
the expected render_plan text. The test diffs them; GOLDEN_UPDATE=1 rewrites expected.txt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpumod.core.plan import plan
from gpumod.core.render import render_plan
from plan_loader import load_scenario

HERE = Path(__file__).parent / "plan"
SCENARIOS = sorted(p.name for p in HERE.iterdir() if (p / "desired.yaml").exists())


def run(name: str) -> str:
    folder = HERE / name
    desired, observed = load_scenario((folder / "desired.yaml").read_text(), (folder / "observed.yaml").read_text())
    return "\n".join(render_plan(plan(desired, observed))) + "\n"


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_plan(name: str) -> None:
    expected = HERE / name / "expected.txt"
    got = run(name)
    if os.environ.get("GOLDEN_UPDATE") == "1":
        expected.write_text(got)
    assert expected.exists(), f"{expected} is missing: run with GOLDEN_UPDATE=1 and review it"
    assert got == expected.read_text()


def test_every_listed_scenario_exists() -> None:
    wanted = {
        "fresh_pod_starts_in_dependency_order", "converged_pod_has_no_steps", "swap_mode_sleeps_first",
        "vram_infeasible_touches_nothing", "spec_change_restarts_only_that", "killed_service_restarts_only_that",
        "prune_unknown_service", "standby_members_start_then_sleep_serialised", "standby_max_awake_sleeps_extra",
        "crash_loop_is_deferred", "foreign_vram_counts", "multi_gpu_first_fit_decreasing",
        "tensor_parallel_takes_n_gpus", "pinned_gpu_honoured", "measured_vram_wins", "drift_warn_reports_only",
        "unreachable_pod_skipped", "wake_sleeping_member", "leaving_mode_stops_dependents_first",
        "down_stops_dependents_first", "warm_start_then_sleep_borrows_room_from_an_awake_member",
        "router_member_starts_asleep",
    }
    assert wanted <= set(SCENARIOS)
