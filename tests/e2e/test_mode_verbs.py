"""The verbs that write the specs, as a user runs them on the sim pod: `mode switch --commit` in a
git checkout (one commit, only the mode line changed, pod converged), `start`/`stop` round trip,
and `presets --pod` verdicts."""

from __future__ import annotations

import json

import pytest

from e2e_helpers import Gpumod
from testkit import GIT_ENV, git

pytestmark = pytest.mark.e2e
POD = "sim-box"




def _repo(g: Gpumod) -> None:
    git(g.specs, "init", "-q")
    git(g.specs, "add", ".")
    git(g.specs, "commit", "-q", "-m", "specs")


def test_mode_switch_commit_edits_one_line_commits_once_and_converges(gpumod: Gpumod) -> None:
    _repo(gpumod)
    gpumod.extra_env.update(GIT_ENV)  # the commit gpumod makes needs an author
    before = (gpumod.specs / "pod.yaml").read_text().splitlines()
    res = gpumod.run("mode", "switch", "rag", "--commit", "--yes", "--specs", str(gpumod.specs), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pod sim-box: mode code -> rag" in res.stdout
    assert "Converged" in res.stdout

    log = git(gpumod.specs, "log", "--format=%s").splitlines()
    assert log == ["pod sim-box: mode code -> rag", "specs"]  # one new commit
    diff = git(gpumod.specs, "show", "--format=", "--unified=0", "HEAD")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-mode: code", "+mode: rag"]
    after = (gpumod.specs / "pod.yaml").read_text().splitlines()
    assert [a for a, b in zip(before, after) if a != b] == ["mode: code"]
    assert git(gpumod.specs, "status", "--porcelain") == ""

    services = gpumod.services(POD)
    assert services["chat"]["state"] == "running"  # a service of rag, not of code
    plan = gpumod.run("plan", str(gpumod.specs))
    assert plan.returncode == 0, plan.stdout + plan.stderr  # converged: nothing left to do


def test_mode_switch_commit_is_refused_with_uncommitted_changes(gpumod: Gpumod) -> None:
    _repo(gpumod)
    services = gpumod.specs / "services.yaml"
    services.write_text(services.read_text() + "\n# my own edit\n")
    pod_before = (gpumod.specs / "pod.yaml").read_text()
    res = gpumod.run("mode", "switch", "rag", "--commit", "--yes", "--specs", str(gpumod.specs))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "uncommitted changes in" in res.stderr and "services.yaml" in res.stderr
    assert "Traceback" not in res.stderr
    assert (gpumod.specs / "pod.yaml").read_text() == pod_before  # nothing edited
    assert len(git(gpumod.specs, "log", "--format=%s").splitlines()) == 1


def test_start_then_stop_round_trip_on_the_sim_pod(gpumod: Gpumod) -> None:
    spec = gpumod.specs
    assert gpumod.run("apply", str(spec), "--yes").returncode == 0
    res = gpumod.run(
        "start", "bge-m3", "--name", "extra-embed", "--yes", "--specs", str(spec), "-o", "json", timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    found = json.loads(res.stdout)
    assert found["service"] == "extra-embed" and found["apply"]["converged"] is True
    assert "name: extra-embed" in (spec / "services.yaml").read_text()
    assert gpumod.services(POD)["extra-embed"]["state"] == "running"

    res = gpumod.run("stop", "extra-embed", "--yes", "--specs", str(spec), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "remove service extra-embed from mode code" in res.stdout
    rows = gpumod.services(POD)
    assert "extra-embed" not in rows or rows["extra-embed"]["state"] not in ("running", "sleeping")
    assert "name: extra-embed" in (spec / "services.yaml").read_text()  # the document stays
    modes = (spec / "modes.yaml").read_text()
    assert "services: [embedding-code, glm-code]" in modes  # the member line is back as it was


def test_presets_for_the_sim_pod_give_verdicts(gpumod: Gpumod) -> None:
    res = gpumod.run("presets", "--pod", POD, "--specs", str(gpumod.specs), "-o", "json")
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert found["gpus"] == ["NVIDIA GeForce RTX 4090"]
    verdicts = {p["name"]: p["verdict"] for p in found["presets"]}
    assert verdicts["bge-m3"] == "fits"
    assert set(verdicts.values()) <= {"fits", "possibly works", "no config"}
    assert "no config" in verdicts.values()  # some presets need more GPUs than one 4090
    text = gpumod.run("presets", "--pod", POD, "--specs", str(gpumod.specs))
    assert "bge-m3" in text.stdout and "fits" in text.stdout


def test_mode_list_and_service_status(gpumod: Gpumod) -> None:
    res = gpumod.run("mode", "list", "--specs", str(gpumod.specs), "-o", "json")
    assert res.returncode == 0, res.stderr
    modes = {m["name"]: m for m in json.loads(res.stdout)["modes"]}
    assert modes["code"]["pods"] == [POD] and modes["code"]["services"] == ["embedding-code", "glm-code"]
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    res = gpumod.run("service", "status", "glm-code", "--specs", str(gpumod.specs), "-o", "json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)["services"]
    assert row["pod"] == POD and row["state"] == "running"
    status_row = gpumod.services(POD)["glm-code"]
    assert row["vram_budget_mb"] == status_row["vram_budget_mb"]  # same figures as `status`


def test_a_switch_to_a_mode_that_does_not_fit_is_refused_and_undone(gpumod: Gpumod) -> None:
    _repo(gpumod)
    pod_before = (gpumod.specs / "pod.yaml").read_bytes()
    res = gpumod.run("mode", "switch", "everything", "--commit", "--yes", "--specs", str(gpumod.specs))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "MiB" in res.stderr and "Traceback" not in res.stderr  # the GPU and how much over
    assert (gpumod.specs / "pod.yaml").read_bytes() == pod_before  # the edit was undone
    assert git(gpumod.specs, "status", "--porcelain") == ""
    assert len(git(gpumod.specs, "log", "--format=%s").splitlines()) == 1  # nothing committed
    assert gpumod.records() == []  # nothing started
