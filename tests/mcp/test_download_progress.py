"""Download progress reaches an MCP client: a start, then one notification per tenth of the
bytes (not one per chunk the pod reports), then done, each a plain line naming pod and repo."""

from __future__ import annotations

from gpumod.core.model import Step
from gpumod.mcp.server import _Progress, progress_text
from gpumod.ops.events import Progress

STEP = Step("rented", "download", "chat", "not in the pod's model cache", "provision", 0,
            detail="Qwen/Qwen3-0.6B (1.5 GB)")


class _Ctx:
    """The one Context method the reporter uses (a seam: the real client test is test_in_memory)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def report_progress(self, progress: int, total: object, message: str) -> None:
        self.sent.append((progress, message))


def test_a_download_line_says_share_bytes_rate_and_time_left() -> None:
    line = progress_text(Progress("rented", STEP, "progress", 750_000_000, 1_500_000_000, 50_000_000))
    assert line == "rented: Qwen/Qwen3-0.6B (1.5 GB): 50% (750.0 MB of 1.5 GB, 50.0 MB/s, 15 s left)"
    assert progress_text(Progress("rented", STEP, "start", 0, 1_500_000_000)) == (
        "rented: downloading Qwen/Qwen3-0.6B (1.5 GB)")
    assert progress_text(Progress("rented", STEP, "done", 1_500_000_000, 1_500_000_000)) == (
        "rented: downloaded Qwen/Qwen3-0.6B (1.5 GB)")


async def test_one_notification_per_tenth_of_the_download() -> None:
    ctx = _Ctx()
    total = 1000
    async with _Progress(ctx) as reporter:  # type: ignore[arg-type]
        reporter.event(Progress("rented", STEP, "start", 0, total))
        for done in range(0, total + 1, 5):  # 201 chunks
            reporter.event(Progress("rented", STEP, "progress", done, total, 100))
        reporter.event(Progress("rented", STEP, "done", total, total))
    messages = [m for _, m in ctx.sent]
    assert messages[0].startswith("rented: downloading") and messages[-1].startswith("rented: downloaded")
    shares = [m.split(": ")[2].split("%")[0] for m in messages[1:-1]]
    assert shares == [str(p) for p in range(0, 101, 10)]
    assert [n for n, _ in ctx.sent] == list(range(1, len(messages) + 1))


def test_the_tui_shows_the_same_line_and_the_same_tenths() -> None:
    from gpumod.ops.events import ProgressLines
    from gpumod.tui.render import event_lines

    event = Progress("rented", STEP, "progress", 750_000_000, 1_500_000_000, 50_000_000)
    assert [t.plain.strip() for t in event_lines(event)] == [progress_text(event)]
    lines = ProgressLines()
    due = [lines.due(Progress("rented", STEP, "progress", d, 100)) for d in (0, 5, 10, 19, 20, 100, 100)]
    assert due == [True, False, True, False, True, True, False]
    assert lines.due(Progress("rented", STEP, "done", 100, 100))
