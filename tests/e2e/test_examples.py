"""Every spec repo under examples/ is applied on its simulated pod, re-planned to nothing, and
brought down again (style.md §13: examples are tested, not just shown)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_helpers import ROOT, Gpumod, kill_recorded

pytestmark = pytest.mark.e2e
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())


@pytest.fixture
def example(request: pytest.FixtureRequest, tmp_path: Path):
    specs = tmp_path / "specs"
    shutil.copytree(request.param, specs)
    g = Gpumod(home=tmp_path / "home", specs=specs)
    yield g
    g.run("down", str(specs), "--yes")
    kill_recorded(g.home)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES], indirect=True)
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
