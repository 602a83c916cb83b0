"""Mistyped TUI commands as a new user types them: a near miss of a command (`/swich rag`, or
`switch rag` without the slash) says which command was meant, with its arguments, and runs nothing."""

from __future__ import annotations

import pytest

from gpumod.tui.app import GpumodTui
from gpumod.tui.commands import CommandError, parse
from gpumod.tui.widgets import OutputLog


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/swich rag", "unknown command /swich; did you mean /switch rag?"),
        ("/stauts", "unknown command /stauts; did you mean /status?"),
        ("/simulat --mode everything", "did you mean /simulate --mode everything?"),
        ("switch rag", "not a command: 'switch rag'; did you mean /switch rag?"),
    ],
)
def test_a_near_miss_names_the_command_meant(line: str, says: str) -> None:
    with pytest.raises(CommandError) as e:
        parse(line)
    assert says in str(e.value)


def test_a_word_far_from_every_command_gets_no_guess() -> None:
    with pytest.raises(CommandError) as e:
        parse("/deploy now")
    assert str(e.value) == "unknown command /deploy; ? shows the commands"


async def test_a_mistyped_switch_on_the_screen_says_what_was_meant_and_runs_nothing() -> None:
    app = GpumodTui("specs", live=False)
    async with app.run_test(size=(130, 44)) as pilot:
        await pilot.press(*"/swich rag", "enter")
        await pilot.pause()
        said = app.query_one(OutputLog).written[-1].plain
        assert "did you mean /switch rag?" in said
        assert app.pass_running is None
