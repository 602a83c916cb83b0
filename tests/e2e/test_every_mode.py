"""Every mode of `specs/` and of every simulated example, applied as a new user would (issue 6):
from a cold pod (a fresh GPUMOD_HOME) `gpumod apply --yes` converges (exit 0) and a second plan
has no changes; a mode that does not fit exits 2 and touches nothing. Then warm switches between
the modes of each repo: each converges, and phase free stops dependents before their dependencies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from e2e_helpers import ROOT, Gpumod, kill_recorded, runs_on_sim_pods_only, use_free_ports

pytestmark = pytest.mark.e2e

REPOS = {"specs": ROOT / "specs"} | {
    p.name: p for p in sorted((ROOT / "examples").iterdir()) if p.is_dir() and runs_on_sim_pods_only(p)
}  # the examples with SSH pods are applied on the tests' own pods (test_examples.py, test_rented_pod.py)
DOES_NOT_FIT = {("specs", "everything")}  # the README's example of a mode that cannot fit
# warm switches, one apply after the other on the same pod; together they visit every mode that fits
SWITCHES = {
    "specs": ["code", "speak", "rag", "code", "blank"],
    "h100-pair": ["two-models", "mixed", "coder-tp2", "two-models"],
}


def _docs(repo: Path) -> list[tuple[Path, dict]]:
    return [(p, d) for p in sorted(repo.rglob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def _modes(repo: Path) -> dict[str, list[str]]:
    """Mode -> its member names."""
    return {
        d["name"]: [m if isinstance(m, str) else m["name"] for m in d.get("services") or ()]
        for _, d in _docs(repo)
        if d.get("kind") == "Mode"
    }


CASES = [(name, mode) for name, repo in REPOS.items() for mode in sorted(_modes(repo))]


@pytest.fixture
def repo(request: pytest.FixtureRequest, tmp_path: Path):
    specs = tmp_path / "specs"
    shutil.copytree(REPOS[request.param], specs)
    use_free_ports(specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)  # a cold pod: nothing ever ran there
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)


def _switch(g: Gpumod, mode: str) -> str:
    """Point the repo's one pod at ``mode``; its name."""
    ((path, pod),) = [(p, d) for p, d in _docs(g.specs) if d.get("kind") == "Pod"]
    if pod["mode"] != mode:
        g.set_mode(str(path.relative_to(g.specs)), mode)
    return pod["name"]


def _apply_converges(g: Gpumod, pod: str, mode: str) -> dict[str, dict]:
    res = g.run("apply", str(g.specs), "--yes", timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"mode {mode}: {out}"
    assert "Traceback" not in out
    again = g.run("plan", str(g.specs), "-o", "json")
    assert again.returncode == 0, f"mode {mode}: the second plan is not empty: {again.stdout}{again.stderr}"
    assert json.loads(again.stdout)["changes"] == 0
    services = g.services(pod)
    assert sorted(services) == sorted(_modes(g.specs)[mode]), f"mode {mode}"
    assert all(s["state"] in ("running", "sleeping") for s in services.values()), services
    return services


@pytest.mark.parametrize(("repo", "mode"), CASES, ids=[f"{r}-{m}" for r, m in CASES], indirect=["repo"])
def test_every_mode_from_a_cold_pod(repo: Gpumod, mode: str, request: pytest.FixtureRequest) -> None:
    pod = _switch(repo, mode)
    if (request.node.callspec.params["repo"], mode) in DOES_NOT_FIT:
        res = repo.run("apply", str(repo.specs), "--yes")
        out = res.stdout + res.stderr
        assert res.returncode == 2, out
        assert "MiB over" in out and "Traceback" not in out
        assert repo.records() == []  # nothing started, nothing recorded
        return
    _apply_converges(repo, pod, mode)


def test_the_switches_visit_every_mode_that_fits() -> None:
    for name, repo in REPOS.items():
        fits = {m for m in _modes(repo) if (name, m) not in DOES_NOT_FIT}
        if len(fits) > 1:
            assert set(SWITCHES[name]) == fits, name


@pytest.mark.parametrize("repo", sorted(SWITCHES), indirect=True)
def test_warm_switches_between_modes(repo: Gpumod, request: pytest.FixtureRequest) -> None:
    depends_on = {d["name"]: d.get("depends_on") or [] for _, d in _docs(repo.specs) if d.get("kind") == "Service"}
    ordered = []  # (dependent, dependency) pairs that phase free stopped or slept in order
    for mode in SWITCHES[request.node.callspec.params["repo"]]:
        pod = _switch(repo, mode)
        planned = repo.run("plan", str(repo.specs), "-o", "json")
        assert planned.returncode in (0, 1), planned.stdout + planned.stderr
        free = {
            s["service"]: s["wave"] for s in json.loads(planned.stdout)["pods"][pod]["steps"] if s["phase"] == "free"
        }
        for dependent, wave in free.items():
            for dependency in depends_on.get(dependent, ()):
                if dependency in free:
                    assert wave < free[dependency], f"to {mode}: {dependent} must stop before {dependency}"
                    ordered.append((dependent, dependency))
        _apply_converges(repo, pod, mode)
    if request.node.callspec.params["repo"] == "specs":
        assert ("glm-code", "embedding-code") in ordered  # code -> speak: glm-code goes first
