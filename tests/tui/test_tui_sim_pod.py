"""The TUI driven through Textual's pilot against the simulated pod (real processes, real HTTP):
typing `/switch rag` converges the pod while the UI stays responsive, the table and the bars
follow; `/switch code` works without leaving; `/simulate --mode everything` shows the over-budget
bar and the alternatives; `/logs S` shows a service's lines verbatim, brackets included."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e_helpers import Gpumod, kill_recorded
from test_cli_edges import MARKUP_LINES, _printing_and_exiting, _repo  # the same failing, markup-printing service

from gpumod.tui.app import GpumodTui
from gpumod.tui.widgets import OutputLog, ServiceTable, VramBars

pytestmark = pytest.mark.e2e
POD = "sim-box"
SIZE = (140, 50)


async def _until(pilot, predicate, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            out = "\n".join(t.plain for t in pilot.app.query_one(OutputLog).written[-30:])
            raise AssertionError(f"not seen in {timeout}s: {what}\n--- output panel ---\n{out}")
        await pilot.pause(0.1)


def _output(app: GpumodTui) -> list[str]:
    return [t.plain for t in app.query_one(OutputLog).written]


def _table(app: GpumodTui) -> dict[str, list[str]]:
    table = app.query_one(ServiceTable)
    rows = (table.get_row_at(i) for i in range(table.row_count))
    return {r[0].plain: [c.plain for c in r] for r in rows}


def _state(app: GpumodTui) -> dict[str, tuple[str, str]]:
    return {name: (row[1], row[2]) for name, row in _table(app).items()}


async def _type(pilot, line: str) -> None:
    await pilot.press(*line, "enter")


async def test_switch_rag_then_code_without_leaving_the_tui(sim_specs: Gpumod) -> None:
    app = GpumodTui(sim_specs.specs, refresh_s=1.0)
    pod_yaml = sim_specs.specs / "pod.yaml"
    original = pod_yaml.read_text().splitlines()
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.result is not None, 30, "the first status")
        assert "chat" not in _table(app)  # mode code: no chat yet

        await _type(pilot, "/switch rag")
        await _until(pilot, lambda: any(": + start " in line for line in _output(app)), 60, "a step starting")
        # the pass runs in a worker: the UI answers while it does, and a second pass is refused
        assert app.pass_running == "/switch rag"
        await _type(pilot, "?")
        await _type(pilot, "/apply")
        assert app.pass_running == "/switch rag", "the help and the refusal came only after the pass"
        assert "commands (the pod shown is the one they act on):" in _output(app)
        assert any(line.startswith("refused: a pass is running (/switch rag)") for line in _output(app))

        await _until(pilot, lambda: app.pass_running is None, 120, "the switch to end")
        assert "converged: the pod matches the specs" in _output(app)
        want = {
            "embedding-code": ("running", "active"),
            "embedding": ("running", "active"),
            "chat": ("running", "active"),
            "glm-code": ("sleeping (router)", "sleeping"),
            "reranker": ("sleeping (l2)", "standby"),
            "hyde": ("sleeping (l1)", "standby"),
        }
        await _until(pilot, lambda: _state(app) == want, 30, f"the table to show rag: {want}")
        bars = "\n".join(t.plain for t in app.query_one(VramBars).shown)
        assert "chat 8598 MiB" in bars and "glm-code 300 MiB (asleep)" in bars and "reserve 512 MiB" in bars
        cli = sim_specs.services(POD)  # `gpumod status -o json`: the same figures, from the same operation
        assert {n: f"{r['vram_used_mb']}/{r['vram_budget_mb']} MiB" for n, r in cli.items()} == {
            n: row[4] for n, row in _table(app).items()
        }
        changed = [(a, b) for a, b in zip(original, pod_yaml.read_text().splitlines()) if a != b]
        assert changed == [("mode: code", "mode: rag")]  # git stays the truth: only the mode line

        await _type(pilot, "/switch code")
        await _until(pilot, lambda: app.pass_running is None and "/switch code" in "".join(_output(app)), 60)
        await _until(
            pilot,
            lambda: _state(app).get("glm-code") == ("running", "active")
            and _state(app).get("chat", ("gone", "not in mode"))[1] == "not in mode",
            60, "the table to show code",
        )
        assert "mode code" in str(app.query_one("#title").render())
        assert pod_yaml.read_text().splitlines() == original
        assert sim_specs.services(POD)["glm-code"]["state"] == "running"  # the CLI sees the same pod
        await _type(pilot, "/quit")
        await pilot.pause(0.2)
    assert app.return_code in (0, None)


async def test_simulate_everything_shows_the_over_budget_bar_and_alternatives(sim_specs: Gpumod) -> None:
    app = GpumodTui(sim_specs.specs, refresh_s=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.result is not None, 30, "the first status")
        await _type(pilot, "/simulate --mode everything")
        await _until(pilot, lambda: "✗ does not fit" in _output(app), 60, "the simulation")
        lines = _output(app)
        proposed = next(line for line in lines if line.strip().startswith("proposed"))
        assert "]!" in proposed and "over by" in proposed
        assert "alternatives:" in lines and any(line.startswith("  - drop glm-code") for line in lines)
        assert "mode: code" in (sim_specs.specs / "pod.yaml").read_text()  # a simulation touches nothing

        # switching to it is refused with the GPU, the MiB over and the alternatives; nothing edited
        await _type(pilot, "/switch everything")
        await _until(pilot, lambda: app.pass_running is None and "does not fit" in "".join(_output(app)[-40:]), 60)
        after = _output(app)[len(lines):]
        assert any("GPU 0 (NVIDIA GeForce RTX 4090) needs" in x and "MiB over" in x for x in after), after
        assert "  alternatives:" in after
        assert any(x.startswith("error: the desired state does not fit") for x in after)
        assert "mode: code" in (sim_specs.specs / "pod.yaml").read_text()


async def test_logs_and_failures_from_a_pod_are_shown_verbatim(tmp_path: Path, monkeypatch) -> None:
    g = Gpumod(home=tmp_path / "home", specs=_repo(tmp_path, _printing_and_exiting(), "bad"))
    monkeypatch.setenv("GPUMOD_HOME", str(g.home))
    app = GpumodTui(g.specs, refresh_s=5.0)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.result is not None, 30, "the first status")
            await _type(pilot, "/apply")
            await _until(pilot, lambda: app.pass_running is None and any("FAILED" in x for x in _output(app)), 90)
            await _type(pilot, "/logs bad")
            await _until(pilot, lambda: any(x.startswith("── bad on box") for x in _output(app)), 30, "the log")
            lines = _output(app)
            for line in MARKUP_LINES:
                assert line in lines  # verbatim: no tag read out of it
            shown = "\n".join(strip.text for strip in app.query_one(OutputLog).lines)
            assert "[bold]b[/bold] [/]" in shown  # and drawn so on the screen
    finally:
        g.run("down", str(g.specs), "--yes")
        kill_recorded(g.home)
