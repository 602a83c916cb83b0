"""The main screen, fed with fixed results (no pod): snapshots of the dashboard and of a
simulation in the output panel (pytest-textual-snapshot; `--snapshot-update` after a deliberate
change, then look at the SVG), and the pod selector of a fleet."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fixed import fixed_simulation, fixed_status
from textual.widgets import Select

from gpumod.tui import render
from gpumod.tui.app import GpumodTui
from gpumod.tui.widgets import OutputLog, PodTitle, ServiceTable

SIZE = (130, 44)


def test_main_screen(snap_compare, tmp_path: Path) -> None:
    result = fixed_status(tmp_path)

    async def feed(pilot) -> None:
        pilot.app.show_status(result)
        await pilot.pause()

    assert snap_compare(GpumodTui("specs", live=False), terminal_size=SIZE, run_before=feed)


def test_simulation_in_the_output_panel(snap_compare, tmp_path: Path) -> None:
    result, sim = fixed_status(tmp_path / "a"), fixed_simulation(tmp_path / "b")

    async def feed(pilot) -> None:
        pilot.app.show_status(result)
        pilot.app.query_one(OutputLog).say(render.simulation_lines(sim, width=50))
        await pilot.pause()

    assert snap_compare(GpumodTui("specs", live=False), terminal_size=SIZE, run_before=feed)


async def test_a_fleet_gets_a_pod_selector_and_the_screen_follows_it(tmp_path: Path) -> None:
    one = fixed_status(tmp_path)
    (pod,) = one.pods
    other = replace(pod, pod="gpu-2", mode="code", services=pod.services[:2])
    fleet = replace(one, pods=(pod, other))
    app = GpumodTui("specs", live=False)
    async with app.run_test(size=SIZE) as pilot:
        app.show_status(one)
        await pilot.pause()
        assert not app.query_one("#pod", Select).display  # one pod: nothing to choose
        app.show_status(fleet)
        await pilot.pause()
        select = app.query_one("#pod", Select)
        assert select.display and select.value == "sim-box"
        await pilot.press(*"/pod gpu-2", "enter")
        await pilot.pause()
        assert app.pod_name == "gpu-2" and select.value == "gpu-2"
        assert "pod gpu-2 · mode code" in str(app.query_one(PodTitle).render())
        assert app.query_one(ServiceTable).row_count == 2
        await pilot.press(*"/pod nowhere", "enter")
        await pilot.pause()
        assert "no pod named nowhere" in app.query_one(OutputLog).written[-1].plain
        assert app.pod_name == "gpu-2"


async def test_leaving_during_a_pass_waits_for_it_to_end() -> None:
    from gpumod.tui.app import Done
    from gpumod.tui.commands import Command

    app = GpumodTui("specs", live=False)
    async with app.run_test(size=SIZE) as pilot:
        app.pass_running = "/switch rag"  # as while a switch runs in its worker
        await pilot.press("ctrl+c")
        await pilot.press(*"/quit", "enter")
        await pilot.pause()
        assert app.is_running
        notes = [t.plain for t in app.query_one(OutputLog).written]
        assert notes.count("a pass is running (/switch rag); leaving when it ends") == 2
        app.post_message(Done(Command("switch", arg="rag")))  # the pass ended
        await pilot.pause(0.2)
        assert not app.is_running
