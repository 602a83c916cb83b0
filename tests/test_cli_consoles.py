"""The CLI's consoles print what they are given verbatim (style.md §17): no markup tags, no
emoji codes, no highlighting — a service's log line `deploy :fire: done` stays that line."""

from __future__ import annotations

import pytest

from gpumod.cli_base import err, out

LINES = ["deploy :fire: done :x:", "[bold]b[/bold] [/path]", "INFO 05-01 [api_server.py:1024] 127.0.0.1:8000"]


@pytest.mark.parametrize("console", [out, err], ids=["out", "err"])
def test_the_consoles_print_text_verbatim(console) -> None:
    with console.capture() as captured:
        for line in LINES:
            console.print(line)
    assert captured.get() == "".join(f"{line}\n" for line in LINES)


def test_a_models_answer_is_printed_verbatim_by_prompt() -> None:
    from gpumod.chat.cli import ConsolePrinter

    printer = ConsolePrinter()
    with printer.console.capture() as captured:
        for line in LINES:
            printer.event({"type": "content", "text": line + "\n"})
    assert captured.get().strip("\n") == "\n".join(LINES)


def test_prompts_spec_problems_are_printed_verbatim() -> None:
    import typer

    from gpumod.chat.cli import err as chat_err
    from gpumod.chat.cli import fail
    from gpumod.errors import Problem, SpecError

    problem = Problem("specs/svc.yaml", 3, "service chat: unknown key 'tools' (value ':fire:')")
    with chat_err.capture() as captured, pytest.raises(typer.Exit):
        fail(SpecError([problem]))
    assert str(problem) in captured.get()
