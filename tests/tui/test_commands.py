"""The TUI's command line (pure): each form the help promises parses to its command, and a line
that is not a command says what would be instead of doing anything."""

from __future__ import annotations

import pytest

from gpumod.tui.commands import HELP, Command, CommandError, parse


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("?", Command("help")),
        ("/help", Command("help")),
        ("/status", Command("status")),
        ("  /switch rag  ", Command("switch", arg="rag")),
        ("/simulate", Command("simulate")),
        ("/simulate --mode everything", Command("simulate", mode="everything")),
        ("/simulate --add hyde --add asr", Command("simulate", add=("hyde", "asr"))),
        ("/simulate --mode=speak --add=hyde,asr", Command("simulate", mode="speak", add=("hyde", "asr"))),
        ("/plan", Command("plan")),
        ("/apply", Command("apply")),
        ("/logs chat", Command("logs", arg="chat")),
        ("/logs chat 200", Command("logs", arg="chat", lines=200)),
        ("/pod other", Command("pod", arg="other")),
        ("/quit", Command("quit")),
        ("/exit", Command("quit")),
    ],
)
def test_every_form_in_the_help_parses(line: str, want: Command) -> None:
    assert parse(line) == want


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("switch rag", "commands start with /"),
        ("/switch", "usage: /switch MODE"),
        ("/switch rag code", "usage: /switch MODE"),
        ("/status now", "takes no arguments"),
        ("/simulate --mode", "--mode needs a value"),
        ("/simulate --frobnicate", "unknown option"),
        ("/logs", "usage: /logs SERVICE"),
        ("/logs chat many", "LINES must be a positive number"),
        ("/deploy", "unknown command /deploy"),
        ("/", "empty command"),
        ("/switch 'rag", "cannot read"),
    ],
)
def test_a_line_that_is_not_a_command_says_why(line: str, says: str) -> None:
    with pytest.raises(CommandError, match=None) as e:
        parse(line)
    assert says in str(e.value)


def test_only_switch_and_apply_are_passes() -> None:
    assert {n for n in ("status", "switch", "simulate", "plan", "apply", "logs") if Command(n).is_pass} == {
        "switch", "apply",
    }


def test_the_help_names_every_command() -> None:
    for word in ("/status", "/switch MODE", "/simulate [--mode M] [--add S]", "/plan", "/apply", "/logs", "/quit", "?"):
        assert word in HELP
