"""The spec-writing verbs as a new user runs them: `gpumod start ORG/MODEL --name x` with a Hugging
Face id that is no preset (pi users' `pi start Qwen/Qwen3-0.6B --name q --memory 0.3`) writes a
vLLM Service on a port no service of the specs uses, and converges on the sim pod."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from e2e_helpers import Gpumod

pytestmark = pytest.mark.e2e
POD = "sim-box"


def _service_doc(g: Gpumod, name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((g.specs / "services.yaml").read_text()) if d]
    return next(d for d in docs if d.get("name") == name)


def _ports(g: Gpumod) -> set[int]:
    docs = [d for d in yaml.safe_load_all((g.specs / "services.yaml").read_text()) if d]
    return {d["port"] for d in docs if "port" in d}


def test_start_a_model_id_that_is_no_preset_writes_a_vllm_service_and_converges(gpumod: Gpumod) -> None:
    spec = gpumod.specs
    gpumod.set_mode("pod.yaml", "blank")  # code mode leaves no room for another model
    taken = _ports(gpumod)
    res = gpumod.run(
        "start", "Qwen/Qwen3-0.6B", "--name", "q", "--memory", "0.3", "--context", "4096",
        "--yes", "--specs", str(spec), "-o", "json", timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["apply"]["converged"] is True

    doc = _service_doc(gpumod, "q")
    assert doc["driver"] == "vllm" and doc["model"] == "Qwen/Qwen3-0.6B"
    assert doc["gpu_memory_utilization"] == 0.3 and doc["context"] == 4096
    assert doc["port"] not in taken
    row = gpumod.services(POD)["q"]
    assert row["state"] == "running" and row["port"] == doc["port"]

    res = gpumod.run("stop", "q", "--yes", "--specs", str(spec), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert gpumod.services(POD).get("q", {}).get("state") not in ("running", "sleeping")


def test_start_a_model_id_skips_the_ports_services_use_and_defaults_to_vllms_memory(gpumod: Gpumod) -> None:
    """No --memory: vLLM's own default (0.9) is written, so the plan can tell the footprint."""
    spec = gpumod.specs
    services = spec / "services.yaml"
    docs = [d for d in yaml.safe_load_all(services.read_text()) if d]
    for doc, port in zip((d for d in docs if d["name"] in ("embedding", "reranker")), (8000, 8001)):
        doc["port"] = port
    services.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    gpumod.set_mode("pod.yaml", "blank")
    res = gpumod.run("start", "Qwen/Qwen3-0.6B", "--name", "q", "--no-apply", "--specs", str(spec))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = _service_doc(gpumod, "q")
    assert doc["port"] == 8002  # 8000 and 8001 are taken by services of the specs
    assert doc["gpu_memory_utilization"] == 0.9
    plan = gpumod.run("plan", str(spec))
    assert plan.returncode == 1 and "+ start q" in plan.stdout, plan.stdout + plan.stderr


def test_simulate_needs_no_pod_when_the_specs_define_one(gpumod: Gpumod) -> None:
    """Like `mode switch` and `start`: --pod may be left out when there is one pod."""
    res = gpumod.run("simulate", str(gpumod.specs), "--mode", "everything")
    assert res.returncode == 1, res.stdout + res.stderr  # does not fit (not "missing option --pod")
    assert "does not fit" in res.stdout and "sim-box" in res.stdout


def test_simulate_without_pod_on_a_fleet_names_the_pods_and_connects_to_none(gpumod: Gpumod) -> None:
    from e2e_helpers import ROOT

    res = gpumod.run("simulate", str(ROOT / "examples" / "ssh-fleet"), "--mode", "idle", timeout=20)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "the specs define 2 pods (rented-h100, workstation); say which one with --pod" in res.stderr
    assert "Traceback" not in res.stderr


def test_plan_json_names_an_unreachable_pod_instead_of_an_empty_plan(gpumod: Gpumod, tmp_path) -> None:
    """`plan -o json` of a pod that cannot be reached (here: an SSH port on loopback nobody listens on)
    must not read as "nothing to do": the pod is named under `unreachable`, exit 2, one error line."""

    from e2e_helpers import unreachable_copy

    specs = unreachable_copy("rented-pod", tmp_path / "rented")
    res = gpumod.run("plan", str(specs), "-o", "json", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    found = json.loads(res.stdout)
    assert found["changes"] == 0 and list(found["unreachable"]) == ["rented"]
    assert found["unreachable"]["rented"]
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: pod rented cannot be planned:")


def test_simulate_of_an_unreachable_pod_without_declared_gpus_says_it_is_unreachable(gpumod: Gpumod, tmp_path) -> None:
    """Not "1 problem(s) in the specs ... check that nvidia-smi works": the pod could not be reached."""

    from e2e_helpers import unreachable_copy

    specs = unreachable_copy("rented-pod", tmp_path / "rented")
    res = gpumod.run("simulate", str(specs), "--mode", "chat", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: pod rented cannot be reached (")
    assert "declares no gpus" in res.stderr and "problem(s) in the specs" not in res.stderr
    assert "Traceback" not in res.stderr


def test_start_with_a_service_name_is_refused_not_served_as_a_model(gpumod: Gpumod) -> None:
    """`gpumod start hyde --name h2`: hyde is a service, not a model vLLM could load."""
    before = {p.name: p.read_bytes() for p in gpumod.specs.glob("*.yaml")}
    res = gpumod.run("start", "hyde", "--name", "h2", "--no-apply", "--specs", str(gpumod.specs))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: hyde is a service of the specs (") and "services.yaml:" in res.stderr
    assert {p.name: p.read_bytes() for p in gpumod.specs.glob("*.yaml")} == before


def test_status_of_an_unreachable_pod_names_it_once(tmp_path: Path) -> None:
    """`gpumod status` of SSH pods that do not answer (loopback ports nobody listens on): the
    line under each pod's header says why, without repeating `pod NAME:`."""

    from e2e_helpers import unreachable_copy

    specs = unreachable_copy("ssh-fleet", tmp_path / "fleet")
    g = Gpumod(home=tmp_path / "home", specs=specs)
    res = g.run("status", str(specs))
    assert res.returncode == 2  # as plan: a script sees that a pod could not be observed
    lines = [line for line in res.stdout.splitlines() if "unreachable" in line]
    assert len(lines) == 2 and "Traceback" not in res.stderr, res.stdout + res.stderr
    for line in lines:
        assert "pod workstation" not in line and "pod rented-h100" not in line, line
