"""Saved plans without a pod: what makes one stale, how it says what changed, and that the saved
steps read back as the very plan that was saved."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod, ObservedService, fingerprint
from gpumod.core.plan import plan
from gpumod.errors import GpumodError
from gpumod.saved_plan import is_saved_plan, load_saved_plan, plan_from_json, save_plan
from gpumod.spec.models import PodSpec
from gpumod.spec.resolved import ResolvedService

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)
POD = PodSpec(kind="Pod", name="box", host="sim", mode="m", gpus=[{"name": GPU.name, "memory_mb": GPU.total_mb}])


def desired(*names: str, mode: str = "m") -> DesiredPod:
    services = tuple(
        DesiredService(n, "active", ResolvedService(name=n, driver="vllm", port=8000 + i), Footprint(1000, 300))
        for i, n in enumerate(names)
    )
    return DesiredPod("box", mode, (GPU,), 512, 1, services)


def running(d: DesiredPod, name: str, pid: int, started_at: float = 100.0) -> ObservedService:
    return ObservedService(name, "running", d.service(name).spec_hash, (0,), pid=pid, started_at=started_at)


def test_fingerprint_changes_when_a_service_is_restarted_behind_gpumods_back() -> None:
    d = desired("a")
    before = ObservedPod("box", gpus=(GPU,), services=(running(d, "a", 10),))
    restarted = replace(before, services=(running(d, "a", 11, started_at=200.0),))
    assert fingerprint((before,)) != fingerprint((restarted,))
    # measured VRAM drifts by itself on a real GPU: not part of it
    drifted = replace(before, services=(replace(before.services[0], vram_mb=((0, 999),)),))
    assert fingerprint((before,)) == fingerprint((drifted,))


def _saved(tmp_path: Path, d: DesiredPod, obs: ObservedPod):
    p = plan([d], [obs])
    path = tmp_path / "p.json"
    save_plan(path, spec_dir=tmp_path, pod_names=None, pod_specs=[POD], desired=[d], observed=[obs], plan=p)
    return path, p


def test_a_saved_plan_reads_back_as_the_same_plan(tmp_path: Path) -> None:
    d = desired("a", "b")
    obs = ObservedPod("box", gpus=(GPU,), services=(running(d, "a", 10),))
    path, p = _saved(tmp_path, d, obs)
    assert is_saved_plan(path)
    saved = load_saved_plan(path)
    assert saved.to_plan() == plan_from_json(p.to_json())
    assert saved.to_plan().pods[0].steps == p.pods[0].steps
    # what apply waits for before each fill wave comes back too (without it nothing would wait)
    assert p.pods[0].fill_needs and saved.to_plan().pods[0].fill_needs == p.pods[0].fill_needs
    assert saved.spec_dir == str(tmp_path.resolve()) and saved.pods is None
    assert saved.changes_since([POD], [d], [obs]) == []


def test_stale_saved_plan_names_what_changed(tmp_path: Path) -> None:
    d = desired("a", "b")
    obs = ObservedPod("box", gpus=(GPU,), services=(running(d, "a", 10),))
    path, _ = _saved(tmp_path, d, obs)
    saved = load_saved_plan(path)

    restarted = replace(obs, services=(running(d, "a", 11, started_at=200.0),))
    assert saved.changes_since([POD], [d], [restarted]) == ["pod box: a was running, pid 10, is now running, pid 11"]
    killed = replace(obs, services=(replace(obs.services[0], status="failed"),))
    assert saved.changes_since([POD], [d], [killed]) == ["pod box: a was running, pid 10, is now failed (pid 10 gone)"]
    gone = replace(obs, reachable=False, error="connection refused", services=())
    assert saved.changes_since([POD], [d], [gone]) == ["pod box: cannot be reached now: connection refused"]

    edited = POD.model_copy(update={"mode": "rag"})
    assert saved.changes_since([edited], [desired("a", mode="rag")], [obs]) == [
        "pod box: its specs changed since the plan was made (mode m → rag)"
    ]
    assert saved.changes_since([POD], [desired("a", "b", "c")], [obs]) == [
        "pod box: its specs changed since the plan was made"
    ]


def test_spec_files_and_junk_are_not_saved_plans(tmp_path: Path) -> None:
    yaml_file = tmp_path / "pod.yaml"
    yaml_file.write_text("kind: Pod\nname: box\n")
    as_json = tmp_path / "spec.json"
    as_json.write_text(json.dumps({"kind": "Pod", "name": "box"}))
    assert not is_saved_plan(yaml_file) and not is_saved_plan(as_json) and not is_saved_plan(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gpumod-saved-plan/1", "plan": 3}')
    with pytest.raises(GpumodError, match="not a readable saved plan"):
        load_saved_plan(bad)


def test_a_hand_edited_step_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    d = desired("a")
    path, _ = _saved(tmp_path, d, ObservedPod("box", gpus=(GPU,)))
    data = json.loads(path.read_text())
    data["plan"]["pods"]["box"]["steps"][0]["action"] = "reboot"
    path.write_text(json.dumps(data))
    with pytest.raises(GpumodError, match="unknown step 'reboot'"):
        load_saved_plan(path)
