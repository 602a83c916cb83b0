"""What the TUI draws (pure), from fixed results: the VRAM bar's segments add up, asleep services
are shaded apart from awake ones, memory gpumod does not manage and the reserve are shown, an
over-budget GPU is marked, and text from a pod is never read as markup."""

from __future__ import annotations

from pathlib import Path

from fixed import fixed_simulation, fixed_status
from rich.text import Text

from gpumod.errors import GpumodError
from gpumod.tui import render
from gpumod.tui.render import Segment, segmented_bar


def _cells(bar: Text) -> str:
    return bar.plain.split("[", 1)[1].split("]", 1)[0]


def test_segments_take_their_share_of_the_bar_and_free_space_the_rest() -> None:
    segs = [Segment("a", 12_000, "awake", "green"), Segment("b", 6_000, "asleep", "blue")]
    bar = segmented_bar(segs, 24_000, width=40)
    cells = _cells(bar)
    assert len(cells) == 40
    assert cells == "█" * 20 + "▒" * 10 + "░" * 10
    assert not bar.plain.endswith("!")


def test_an_over_budget_gpu_shows_every_segment_and_marks_what_is_past_its_size() -> None:
    segs = [Segment("big", 24_000, "awake", "green"), Segment("more", 6_000, "awake", "blue")]
    bar = segmented_bar(segs, 24_000, width=40)  # 30 000 MiB drawn in 40 cells: 32 fit, 8 do not
    assert _cells(bar) == "█" * 32 + "▞" * 8 and bar.plain.endswith("!")
    on_red = [bar.plain[s.start:s.end] for s in bar.spans if "on red" in str(s.style)]
    assert "".join(on_red) == "▞" * 8
    assert any("blue" in str(s.style) for s in bar.spans)  # the segment past the size is still drawn


def test_a_tiny_service_still_gets_a_cell() -> None:
    small = segmented_bar([Segment("tiny", 10, "awake", "red")], 24_000, width=40)
    assert _cells(small) == "█" + "░" * 39


def test_live_bars_show_each_service_awake_or_asleep_with_foreign_memory_and_the_reserve(tmp_path: Path) -> None:
    result = fixed_status(tmp_path)
    (pod,) = result.pods
    segs = {s.label: s for s in render.gpu_segments(result, pod, pod.gpus[0])}
    assert {n: (s.mb, s.kind) for n, s in segs.items()} == {
        "chat": (8598, "awake"),
        "embedding": (2200, "awake"),
        "embedding-code": (2500, "awake"),
        "glm-code": (300, "asleep"),
        "reranker": (400, "asleep"),
        render.FOREIGN: (700, "foreign"),
        render.RESERVE: (512, "reserve"),
    }
    lines = render.status_bars(result, pod, width=60)
    assert lines[0].plain.startswith("GPU 0 NVIDIA GeForce RTX 4090")
    # asleep segments are drawn apart from awake ones (another glyph, dimmed)
    bar = lines[1]
    assert "▒" in bar.plain and "╳" in bar.plain
    dim = [bar.plain[s.start:s.end] for s in bar.spans if "dim" in str(s.style)]
    assert dim and all(set(run) == {"▒"} for run in dim)


def test_the_table_has_every_column_and_the_why_not_running_note(tmp_path: Path) -> None:
    result = fixed_status(tmp_path)
    (pod,) = result.pods
    rows = {r[0].plain: [c.plain for c in r] for r in render.table_rows(result, pod)}
    assert rows["glm-code"] == ["glm-code", "sleeping (router)", "sleeping", "0", "300/300 MiB", "7070", "3h00m", ""]
    assert rows["hyde"][1] == "degraded" and rows["hyde"][7].startswith("2 failed starts")
    assert len(rows["chat"]) == len(render.COLUMNS)


def test_simulation_shows_the_over_budget_bar_by_how_much_and_the_alternatives(tmp_path: Path) -> None:
    lines = [t.plain for t in render.simulation_lines(fixed_simulation(tmp_path), width=50)]
    proposed = next(line for line in lines if line.strip().startswith("proposed"))
    assert "]!" in proposed and "over by" in proposed
    assert "alternatives:" in lines
    assert any(line.startswith("  - drop glm-code from mode everything") for line in lines)
    assert lines[-1] == "✗ does not fit"


def test_text_from_a_pod_is_never_markup() -> None:
    err = GpumodError("pod x: [bold]boom[/bold] [/]", hint="see [red]this[/red]")
    lines = render.error_lines(err)
    assert lines[0].plain == "error: pod x: [bold]boom[/bold] [/]"
    assert lines[1].plain == "hint: see [red]this[/red]"
    assert all("bold" not in str(s.style) for s in lines[0].spans)
