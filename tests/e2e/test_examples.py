"""Every spec repo under examples/ is applied on its simulated pod, re-planned to nothing, and
brought down again (examples are tested, not just shown)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from e2e_helpers import ROOT, Gpumod, kill_recorded, runs_on_sim_pods_only, use_free_ports

pytestmark = pytest.mark.e2e
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
# real hosts: applied on test pods (ssh-fleet below, rented-pod in test_rented_pod.py)
SSH_EXAMPLES = [p for p in EXAMPLES if not runs_on_sim_pods_only(p)]
SIM_EXAMPLES = [p for p in EXAMPLES if p not in SSH_EXAMPLES]


@pytest.fixture
def example(request: pytest.FixtureRequest, tmp_path: Path):
    specs = tmp_path / "specs"
    shutil.copytree(request.param, specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)


def test_every_example_is_a_valid_spec_repo() -> None:
    for example in EXAMPLES:
        res = Gpumod(home=ROOT / ".no-home", specs=example).run("validate", str(example))
        assert res.returncode == 0, f"{example.name}: {res.stderr}"


@pytest.mark.parametrize("example", SIM_EXAMPLES, ids=[p.name for p in SIM_EXAMPLES], indirect=True)
def test_example_applies_and_converges(example: Gpumod) -> None:
    assert example.run("validate", str(example.specs)).returncode == 0
    res = example.run("apply", str(example.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert example.run("plan", str(example.specs)).returncode == 0
    status = example.status()
    for pod in status["pods"].values():
        for svc in pod["services"]:
            assert svc["state"] in ("running", "sleeping"), svc
    down = example.run("down", str(example.specs), "--yes")
    assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.parametrize("example", [ROOT / "examples" / "h100-pair"], ids=["h100-pair"], indirect=True)
def test_h100_pair_modes_place_gpus(example: Gpumod) -> None:
    example.set_mode("pod.yaml", "coder-tp2")
    res = example.run("apply", str(example.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    tp = example.services("h100-pair")["coder-tp2"]
    assert tp["gpus"] == [0, 1]
    record = next(r for r in example.records() if r["name"] == "coder-tp2")
    assert "--tensor-parallel-size" in record["argv"]

    example.set_mode("pod.yaml", "mixed")
    plan = json.loads(example.run("plan", str(example.specs), "-o", "json").stdout)
    steps = plan["pods"]["h100-pair"]["steps"]
    assert [s["action"] for s in steps if s["service"] == "coder-tp2"] == ["stop"]
    res = example.run("apply", str(example.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    services = example.services("h100-pair")
    assert services["embed"]["gpus"] == [1]  # pinned
    assert services["coder"]["gpus"] != services["gpt-small"]["gpus"] or services["coder"]["gpus"] == [0]


def _retarget(docs: list[dict], hosts: dict[str, tuple[str, object]], state: Path) -> list[dict]:
    """The example's pods pointed at test pods: host, keys, simulated GPUs, state under tmp."""
    out = []
    for doc in docs:
        if doc.get("kind") == "Pod":
            ip, keys = hosts[doc["name"]]
            doc = dict(doc)
            doc.pop("binaries", None)  # the sim server plays vllm and llama-server
            doc.update(
                host=f"ssh://root@{ip}:22",
                known_hosts=str(keys.known_hosts),
                identity_file=str(keys.client_key),
                python=sys.executable,
                state_dir=str(state / doc["name"]),
                gpus=[{"name": "NVIDIA H100 80GB HBM3" if "h100" in doc["name"] else "NVIDIA GeForce RTX 4090",
                       "memory_mb": 81559 if "h100" in doc["name"] else 24564}],
                sim={"load_s": 0.3, "sleep_s": 0.1, "wake_s": 0.1},
            )
        out.append(doc)
    return out


def test_ssh_fleet_example_on_a_systemd_pod_and_a_container_pod(systemd_pod, netns_pods, tmp_path: Path) -> None:
    net = netns_pods(n=1)
    source = ROOT / "examples" / "ssh-fleet"
    specs = tmp_path / "specs"
    specs.mkdir()
    hosts = {"workstation": (systemd_pod.ip, systemd_pod.keys), "rented-h100": (net.pods[0].ip, net.keys)}
    for path in sorted(source.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        (specs / path.name).write_text(yaml.safe_dump_all(_retarget(docs, hosts, tmp_path / "state")))
    g = Gpumod(home=tmp_path / "home", specs=specs, extra_env={"HF_TOKEN": "hf_example_secret_value"})
    try:
        res = g.run("apply", str(specs), "--yes")
        assert res.returncode == 0, res.stdout + res.stderr
        status = g.status()["pods"]
        assert {s["service"]: s["state"] for s in status["workstation"]["services"]} == {
            "embedding-code": "running", "devstral": "running"
        }
        assert {s["service"]: s["state"] for s in status["rented-h100"]["services"]} == {"coder": "running"}
        supervisors = {r["name"]: r.get("supervisor") for r in g.records_in(tmp_path / "state" / "workstation")}
        assert supervisors == {"embedding-code": "systemd", "devstral": "systemd"}
        rented = {r["name"]: r for r in g.records_in(tmp_path / "state" / "rented-h100")}
        assert rented["coder"].get("supervisor", "process") == "process"
        assert "--tensor-parallel-size" not in rented["coder"]["argv"]  # the 1 x H100 config
        assert "hermes" in rented["coder"]["argv"]
        assert g.run("plan", str(specs)).returncode == 0
    finally:
        down = g.run("down", str(specs), "--yes")
    assert down.returncode == 0, down.stdout + down.stderr
