"""``since_text``: the one place the CLI table and the TUI table turn a start time into "since"."""

from gpumod.ops.status import since_text


def test_since_text_steps_from_seconds_to_minutes_to_hours() -> None:
    now = 100_000.0
    assert since_text(None, now) == "-"
    assert since_text(now - 42, now) == "42s"
    assert since_text(now - 119, now) == "119s"
    assert since_text(now - 120, now) == "2m"
    assert since_text(now - 7199, now) == "119m"
    assert since_text(now - 3 * 3600 - 5 * 60, now) == "3h05m"
    assert since_text(now + 10, now) == "0s"  # a clock skew never shows a negative age
