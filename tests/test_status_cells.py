"""The status table's cells, computed once in ``gpumod.ops.status`` for the CLI table, ``gpumod
service status`` and the TUI table: the "since" age, the state label and its style, VRAM used/budget."""

from dataclasses import replace

from gpumod.ops.status import ServiceStatus, since_text

ROW = ServiceStatus(
    service="chat", state="running", target="running", sleep_level=None, gpus=(0,), vram_used_mb=8000,
    vram_budget_mb=8192, port=7071, pid=10, since=None, message="", degraded=False, failures=0,
    last_failure_at=None, last_error="", last_log_line="", retry_at=None, deferred="", note="",
)


def test_since_text_steps_from_seconds_to_minutes_to_hours() -> None:
    now = 100_000.0
    assert since_text(None, now) == "-"
    assert since_text(now - 42, now) == "42s"
    assert since_text(now - 119, now) == "119s"
    assert since_text(now - 120, now) == "2m"
    assert since_text(now - 7199, now) == "119m"
    assert since_text(now - 3 * 3600 - 5 * 60, now) == "3h05m"
    assert since_text(now + 10, now) == "0s"  # a clock skew never shows a negative age


def test_state_label_and_style() -> None:
    assert (ROW.state_label, ROW.state_style) == ("running", "green")
    asleep = replace(ROW, state="sleeping", sleep_level="l1")
    assert (asleep.state_label, asleep.state_style) == ("sleeping (l1)", "cyan")
    degraded = replace(ROW, state="starting", degraded=True)
    assert (degraded.state_label, degraded.state_style) == ("degraded", "red")
    assert replace(ROW, state="weird").state_style == ""


def test_vram_text_shows_a_missing_budget_as_a_dash() -> None:
    assert ROW.vram_text == "8000/8192 MiB"
    assert replace(ROW, vram_budget_mb=None, vram_used_mb=0).vram_text == "0/- MiB"
