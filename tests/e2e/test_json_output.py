"""`-o json` on the read verbs, in the shapes docs/cli.md documents: validate, logs and down's
recap (plan, apply and status have their own tests)."""

from __future__ import annotations

import json

import pytest

from e2e_helpers import Gpumod

pytestmark = pytest.mark.e2e
POD = "sim-box"


def test_validate_json_valid_and_invalid(gpumod: Gpumod, tmp_path) -> None:
    res = gpumod.run("validate", str(gpumod.specs), "-o", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["valid"] is True and data["pods"] == [POD] and "glm-code" in data["services"]
    assert "code" in data["modes"]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pod.yaml").write_text("kind: Pod\nname: x\nmode: m\ncolour: red\n")
    res = gpumod.run("validate", str(bad), "-o", "json")
    assert res.returncode == 2
    data = json.loads(res.stdout)
    assert data["valid"] is False
    # every problem, each at its line: the unknown key and the undefined mode
    found = {(p["path"].endswith("pod.yaml"), p["line"]): p["message"] for p in data["problems"]}
    assert "colour" in found[True, 4] and "'m'" in found[True, 3]


def test_logs_and_down_json(gpumod: Gpumod) -> None:
    assert gpumod.run("apply", str(gpumod.specs), "--yes").returncode == 0
    res = gpumod.run("logs", str(gpumod.specs), "glm-code", "-n", "3", "-o", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["service"] == "glm-code"
    lines = data["pods"][POD]["lines"]
    assert len(lines) == 3 and all(isinstance(line, str) for line in lines)

    res = gpumod.run("down", str(gpumod.specs), "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert data["down"] is True and data["converged"] is True and data["problems"] == []
    assert sorted((s["action"], s["service"], s["status"]) for s in data["steps"]) == [
        ("stop", "embedding-code", "ok"),
        ("stop", "glm-code", "ok"),
    ]
    assert gpumod.records() == []
