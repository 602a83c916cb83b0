"""Provisioning in the plan (gpumod.provision): set-up steps and downloads from recorded setup
facts and a local hub's file list, refusals of every pod at once, the steps first in the pod's
plan, how they render, and that such a plan is not saved (its steps cannot be replayed)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpumod.core.model import ObservedPod, Plan, PodPlan, Step
from gpumod.core.render import render_plan
from gpumod.drivers.provision import SetupRefusedError, parse_facts
from gpumod.errors import GpumodError, ProvisionRefusedError
from gpumod.provision import Provision, model_source, plan_provision
from gpumod.spec.models import PodSpec
from infra.hubserver import HubRepo, HubServer

DATA = Path(__file__).parent / "drivers" / "data" / "provision"
MiB = 1 << 20
REPO = HubRepo.generate("acme/plan-model", {"model.safetensors": 3 * MiB}, {"config.json": "{}\n"})


def facts(name: str):
    return parse_facts((DATA / f"probe_{name}.json").read_text().replace("\n", " ").strip())


def pod(name: str = "p", **setup) -> PodSpec:
    return PodSpec.model_validate({
        "kind": "Pod", "name": name, "host": "ssh://root@192.0.2.1:22", "mode": "m",
        "setup": {"vllm": "0.10.1", "python": "3.11", "models_path": "/tmp/provt/rec/bare-models", **setup},
    })


def desired(pod_name: str, *models: tuple[str, str, str]):
    services = [SimpleNamespace(name=n, spec=SimpleNamespace(driver=d, model=m)) for n, d, m in models]
    return SimpleNamespace(name=pod_name, services=services)


@pytest.fixture
def hub(monkeypatch):
    with HubServer([REPO]) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


def test_model_source_is_a_vllm_repo_id_only() -> None:
    assert model_source("vllm", "Qwen/Qwen3-0.6B").repo == "Qwen/Qwen3-0.6B"
    assert model_source("vllm", "acme/x@v2").revision == "v2"
    assert model_source("vllm", "/models/qwen") is None and model_source("vllm", "~/m") is None
    assert model_source("llamacpp", "Qwen/Qwen3-0.6B") is None and model_source("vllm", None) is None


def test_a_bare_pod_gets_set_up_steps_then_a_download_for_its_service(hub) -> None:
    p = pod()
    obs = ObservedPod(p.name, setup=facts("bare"))
    want = desired(
        p.name, ("chat", "vllm", REPO.repo_id), ("local", "vllm", "/models/x"), ("twin", "vllm", REPO.repo_id)
    )
    prov = asyncio.run(plan_provision([p], [want], [obs], state_dirs={p.name: "/srv/gpumod"}))
    steps = prov.pods[0].steps()
    assert [(s.action, s.service) for s in steps] == [
        ("setup", "install-uv"), ("setup", "create-models-dir"), ("setup", "create-venv"), ("setup", "install-vllm"),
        ("setup", "install-packages"), ("download", "chat"),  # one download per repo
    ]
    assert all(s.phase == "provision" for s in steps)
    assert dict(prov.pods[0].setup[0].env)["UV_INSTALL_DIR"] == "/srv/gpumod/tools/bin"  # under the state dir
    assert steps[-1].render() == f"↓ download {REPO.repo_id} (3.1 MB) for chat: not in the pod's model cache"
    assert steps[0].render() == "⚙ install uv: uv not found on the pod"


def test_the_plan_shows_provisioning_first_and_counts_it() -> None:
    prov_step = Step("p", "setup", "install-uv", "uv not found on the pod", "provision", 0, detail="install uv")
    start = Step("p", "start", "chat", "not running", "fill", 1)
    plan = Plan((PodPlan("p", True, (start,)),))
    merged = Provision((SimpleNamespace(pod="p", steps=lambda: (prov_step,)),)).merged(plan)  # type: ignore[arg-type]
    assert merged.pods[0].steps == (prov_step, start)
    text = "\n".join(render_plan(merged))
    assert "  set up:\n    ⚙ install uv: uv not found on the pod\n  fill, wave 1:" in text
    assert "Plan: 1 set-up step(s), 0 download(s), 1 to start" in text
    assert merged.to_json()["pods"]["p"]["steps"][0]["detail"] == "install uv"


def test_a_download_too_big_and_an_old_driver_are_refused_together_before_anything(hub) -> None:
    small = replace(facts("bare"), free_bytes=1_000_000, disk_path="/workspace")
    a, b = pod("a"), pod("b")
    observed = [ObservedPod("a", setup=small), ObservedPod("b", setup=facts("old_driver"))]
    with pytest.raises(SetupRefusedError) as caught:
        asyncio.run(plan_provision([a, b], [desired("a", ("chat", "vllm", REPO.repo_id))], observed,
                                   state_dirs={}))
    assert isinstance(caught.value, ProvisionRefusedError)
    reasons = caught.value.reasons
    assert reasons[0].startswith(f"pod a: service chat: {REPO.repo_id}@main needs 3.1 MB more on /workspace, "
                                 "which has 1.0 MB free")
    assert reasons[1].startswith("pod b: NVIDIA driver 470.182.03 (CUDA 11.4) is too old for vllm==0.10.1")


def test_a_cached_model_needs_no_hub_call(monkeypatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a hub call would fail
    p = pod(models_path="/tmp/provt/rec/models")
    obs = ObservedPod(p.name, setup=facts("ready"))
    prov = asyncio.run(plan_provision([p], [desired(p.name, ("chat", "vllm", "acme/tiny-model"))], [obs],
                                      state_dirs={}))
    assert prov.pods[0].downloads == () and prov.pods[0].setup == ()


def test_an_unreachable_hub_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    p = pod()
    with pytest.raises(GpumodError, match=r"cannot list acme/x on the hub at http://127.0.0.1:9"):
        asyncio.run(plan_provision([p], [desired(p.name, ("chat", "vllm", "acme/x"))],
                                   [ObservedPod(p.name, setup=facts("bare"))], state_dirs={}))


def test_a_plan_with_provisioning_steps_is_not_saved(tmp_path: Path) -> None:
    from gpumod.ops.plan import save

    step = Step("p", "download", "chat", "not cached", "provision", 0, detail="acme/x (1 MB)")
    result = SimpleNamespace(snapshot=SimpleNamespace(plan=Plan((PodPlan("p", True, (step,)),))))
    with pytest.raises(GpumodError, match="set-up or download steps \\(pod p\\): it cannot be saved"):
        save(result, tmp_path / "plan.json", "specs", None)  # type: ignore[arg-type]
    assert not (tmp_path / "plan.json").exists()


def test_a_commit_revision_is_checked_against_the_hub_file_list(hub) -> None:
    """A download pinned to a commit writes no ref: its snapshot folder alone does not mean complete."""
    p = pod(models_path="/tmp/provt/rec/models")
    ready = facts("ready")
    partial = replace(ready, cached=tuple(
        replace(r, repo=REPO.repo_id, refs=(), snapshots=(replace(r.snapshots[0], revision=REPO.commit),))
        for r in ready.cached if r.repo == "acme/big-model"))
    want = desired(p.name, ("chat", "vllm", f"{REPO.repo_id}@{REPO.commit}"))
    prov = asyncio.run(plan_provision([p], [want], [ObservedPod(p.name, setup=partial)], state_dirs={}))
    assert [d.service for d in prov.pods[0].downloads] == ["chat"]
    assert prov.pods[0].downloads[0].fetch_bytes == 3 * MiB  # only its config.json (same size) is there
