"""What an unattended controller shows, as a user scrapes and ships it: `gpumod watch
--metrics-port N` answers /metrics with the documented families (a step counter moves after an
edit), and `--log-format json` makes every stderr line a JSON object carrying reconcile id, pod,
service, step, outcome and duration."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e_helpers import Gpumod, wait_for
from testkit import free_port

pytestmark = pytest.mark.e2e
POD = "sim-box"
FAMILIES = {
    "gpumod_passes",
    "gpumod_pass_duration_seconds",
    "gpumod_steps",
    "gpumod_gpu_memory_used_bytes",
    "gpumod_gpu_memory_total_bytes",
    "gpumod_services",
    "gpumod_degraded_services",
    "gpumod_pod_up",
    "gpumod_seconds_since_last_converged_pass",
}


def _scrape(port: int) -> dict[str, dict[tuple, float]] | None:
    """name -> {sorted label items: value}, or None while the server does not answer."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _steps(m: dict, action: str) -> float:
    return sum(v for labels, v in m.get("gpumod_steps_total", {}).items() if ("action", action) in labels)


def _passes(m: dict, outcome: str) -> float:
    return m.get("gpumod_passes_total", {}).get((("outcome", outcome),), 0.0)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def test_watch_serves_metrics_and_a_step_counter_moves_after_an_edit(gpumod: Gpumod) -> None:
    port = free_port()
    proc = gpumod.popen("watch", str(gpumod.specs), "--metrics-port", str(port), "--interval", "600")
    try:
        first = wait_for(lambda: (m := _scrape(port)) and _passes(m, "converged") >= 1 and m, timeout=90)
        names = {name.removesuffix("_total").removesuffix("_count") for name in first}
        assert FAMILIES <= names | {n.removesuffix("_bucket") for n in names}, FAMILIES - names
        assert _steps(first, "start") == 2  # embedding-code and glm-code of mode code
        gpu = (("gpu", "0"), ("pod", POD))
        assert first["gpumod_gpu_memory_total_bytes"][gpu] == 24564 * 1024 * 1024
        assert 0 < first["gpumod_gpu_memory_used_bytes"][gpu] <= first["gpumod_gpu_memory_total_bytes"][gpu]
        assert first["gpumod_services"][(("pod", POD), ("state", "running"))] == 2
        assert first["gpumod_pod_up"][(("pod", POD),)] == 1
        assert first["gpumod_degraded_services"][(("pod", POD),)] == 0
        assert first["gpumod_pass_duration_seconds_count"][()] >= 1
        assert first["gpumod_seconds_since_last_converged_pass"][()] >= 0

        gpumod.set_mode("pod.yaml", "rag")
        after = wait_for(
            lambda: (m := _scrape(port)) and _passes(m, "converged") >= 2 and _steps(m, "sleep") >= 1 and m,
            timeout=120,
        )
        assert _steps(after, "start") > _steps(first, "start")  # chat, reranker, hyde, ...
        assert after["gpumod_services"][(("pod", POD), ("state", "sleeping"))] >= 1
    finally:
        code, out = _stop(proc)
    assert code == 0, out
    assert "watch stopped" in out


def test_watch_refuses_a_metrics_port_in_use(gpumod: Gpumod) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = gpumod.run("watch", str(gpumod.specs), "--metrics-port", str(port), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in res.stderr and "Traceback" not in res.stderr
    assert gpumod.records() == []  # no pass ran


def test_log_format_json_every_stderr_line_parses(gpumod: Gpumod, tmp_path) -> None:
    res = gpumod.run("--log-format", "json", "apply", str(gpumod.specs), "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [json.loads(line) for line in res.stderr.splitlines()]  # every line, or this raises
    steps = [e for e in lines if e["event"].startswith("step.")]
    assert {e["event"] for e in steps} == {"step.started", "step.done"}  # info level without -v
    assert len({e["reconcile_id"] for e in lines if "reconcile_id" in e}) == 1
    for done in (e for e in steps if e["event"] == "step.done"):
        assert done["pod"] == POD and done["service"] in ("embedding-code", "glm-code")
        assert done["step"] == "start" and done["outcome"] == "ok" and done["duration_s"] > 0
        assert done["reconcile_id"] and done["level"] == "info" and done["timestamp"]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pod.yaml").write_text("kind: Pod\nname: x\nmode: m\ncolour: red\n")
    res = gpumod.run("--log-format", "json", "apply", str(bad), "--yes")
    assert res.returncode == 2
    (error,) = [json.loads(line) for line in res.stderr.splitlines()]
    assert error["event"] == "cli.error" and error["hint"]
    assert any("colour" in d for d in error["details"]) and any("mode 'm'" in d for d in error["details"])


BROKEN = """\
kind: Service
name: broken
driver: command
port: {port1}
vram_mb: 100
command: ["{{python}}", -c, "import sys; sys.exit(3)"]
---
kind: Service
name: after
driver: command
port: {port2}
vram_mb: 100
depends_on: [broken]
command: ["{{python}}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{{port}}"]
---
kind: Mode
name: broken
services: [broken, after]
"""


def test_log_format_json_failed_and_skipped_steps_carry_outcome_and_error(gpumod: Gpumod) -> None:
    (gpumod.specs / "broken.yaml").write_text(BROKEN.format(port1=free_port(), port2=free_port()))
    gpumod.set_mode("pod.yaml", "broken")
    res = gpumod.run("--log-format", "json", "apply", str(gpumod.specs), "--yes")
    assert res.returncode == 1, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stderr.splitlines()]
    failed = [e for e in events if e["event"] == "step.failed"]
    skipped = [e for e in events if e["event"] == "step.skipped"]
    assert failed and failed[0]["service"] == "broken" and failed[0]["step"] == "start"
    assert failed[0]["outcome"] == "failed" and failed[0]["duration_s"] >= 0 and failed[0]["error"]
    assert failed[0]["pod"] == POD and failed[0]["reconcile_id"] and failed[0]["level"] == "warning"
    assert skipped and skipped[0]["service"] == "after" and skipped[0]["outcome"] == "skipped"
    assert "broken" in skipped[0]["reason"]
