"""The TUI's command line: what a typed line means (pure), and the help text.

Why a module of its own: parsing is the one part of the TUI with rules of its own (which words,
which options, what is an error); keeping it pure lets the tests check every form without an app.
A line that does not parse raises ``CommandError`` with a message for the output panel.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass

__all__ = ["HELP", "PASSES", "Command", "CommandError", "parse"]

HELP = """\
commands (the pod shown is the one they act on):
  /status                          observe the pod now (it also refreshes every few seconds)
  /switch MODE                     set the pod's `mode:` in its spec file, then apply
  /simulate [--mode M] [--add S]   would mode M (default: the pod's) plus service S fit? touches nothing
  /plan                            what /apply would do
  /apply                           converge the pod to its specs
  /logs SERVICE [LINES]            the last lines of a service's log (default 50)
  /pod NAME                        show another pod of the fleet (or use the selector)
  /quit                            leave (Ctrl+C too)
  ?  or /help                      this help"""

PASSES = frozenset({"switch", "apply"})  # commands that change the pod: one at a time


class CommandError(Exception):
    """A line that is not a command; the message says what would be."""


@dataclass(frozen=True)
class Command:
    name: str  # status, switch, simulate, plan, apply, logs, pod, quit, help
    arg: str = ""  # MODE for switch, SERVICE for logs, NAME for pod
    mode: str | None = None  # simulate --mode
    add: tuple[str, ...] = ()  # simulate --add (repeatable, or comma-separated)
    lines: int = 50  # logs

    @property
    def is_pass(self) -> bool:
        return self.name in PASSES


_BARE = {"status", "plan", "apply", "quit", "help"}
_NAMES = ("status", "switch", "simulate", "plan", "apply", "logs", "pod", "quit", "exit", "help")


def parse(line: str) -> Command:
    text = line.strip()
    if text in ("?", "/?", "/help", "help"):
        return Command("help")
    if not text.startswith("/"):
        if text.split()[0].lower() in _NAMES:
            raise CommandError(f"not a command: {text!r}; did you mean /{text}? (commands start with /)")
        raise CommandError(f"not a command: {text!r} (commands start with /; ? shows them)")
    try:
        words = shlex.split(text[1:])
    except ValueError as e:
        raise CommandError(f"cannot read {text!r}: {e}") from None
    if not words:
        raise CommandError("an empty command; ? shows the commands")
    name, args = words[0].lower(), words[1:]
    if name == "exit":
        name = "quit"
    if name in _BARE:
        if args:
            raise CommandError(f"/{name} takes no arguments (got {' '.join(args)})")
        return Command(name)
    if name in ("switch", "pod"):
        what = "MODE" if name == "switch" else "NAME"
        if len(args) != 1:
            raise CommandError(f"usage: /{name} {what}")
        return Command(name, arg=args[0])
    if name == "logs":
        if not 1 <= len(args) <= 2:
            raise CommandError("usage: /logs SERVICE [LINES]")
        lines = 50
        if len(args) == 2:
            if not args[1].isdigit() or int(args[1]) < 1:
                raise CommandError(f"LINES must be a positive number, got {args[1]!r}")
            lines = int(args[1])
        return Command("logs", arg=args[0], lines=lines)
    if name == "simulate":
        return _simulate(args)
    close = difflib.get_close_matches(name, _NAMES, n=1, cutoff=0.6)
    if close:
        meant = shlex.join([close[0], *args])
        raise CommandError(f"unknown command /{name}; did you mean /{meant}? (? shows the commands)")
    raise CommandError(f"unknown command /{name}; ? shows the commands")


def _simulate(args: list[str]) -> Command:
    mode: str | None = None
    add: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        key, eq, value = word.partition("=")
        if key not in ("--mode", "--add"):
            raise CommandError(f"/simulate: unknown option {word!r}; usage: /simulate [--mode M] [--add S]")
        if not eq:
            i += 1
            if i >= len(args):
                raise CommandError(f"/simulate: {key} needs a value")
            value = args[i]
        if key == "--mode":
            mode = value
        else:
            add += [v for v in value.split(",") if v]
        i += 1
    return Command("simulate", mode=mode, add=tuple(add))
