"""The agent's tools (``ls``, ``read``, ``glob``, ``rg``, and ``bash`` when allowed), confined to one folder.

Why a module: the model decides what to read, so every path it names is checked here: it is
resolved (symlinks followed) and must stay inside the working folder; ``..`` or a symlink that
leads out is refused with a message the model sees as the tool's result. ``rg`` runs ripgrep
when it is installed (argv, no shell, in the folder) and a small Python search otherwise.
``bash`` exists only with ``--allow-bash``: a shell can go anywhere, so it is the user's choice.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ToolError", "Toolbox"]

MAX_OUTPUT = 64 * 1024  # characters of a tool result sent back to the model
MAX_ENTRIES = 1000
BASH_TIMEOUT_S = 60.0


class ToolError(Exception):
    """A tool call that cannot run (bad arguments, a path outside the folder): its message is the result."""


def _schema(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


SCHEMAS = {
    "ls": _schema(
        "ls", "List a directory (default: the working folder); directories end with '/'.",
        {"path": {"type": "string", "description": "directory, relative to the working folder"}}, [],
    ),
    "read": _schema(
        "read", "Read a text file, optionally from a line offset and for a number of lines.",
        {
            "path": {"type": "string"},
            "offset": {"type": "integer", "description": "first line, 1-based"},
            "limit": {"type": "integer", "description": "how many lines"},
        },
        ["path"],
    ),
    "glob": _schema(
        "glob", "Find files matching a glob pattern such as '**/*.py'.",
        {"pattern": {"type": "string"}, "path": {"type": "string", "description": "where to start"}}, ["pattern"],
    ),
    "rg": _schema(
        "rg", "Search file contents with ripgrep arguments, e.g. 'TODO -t py -C 2' (no quotes around the pattern).",
        {"args": {"type": "string"}}, ["args"],
    ),
    "bash": _schema("bash", "Run a shell command in the working folder.", {"command": {"type": "string"}}, ["command"]),
}


@dataclass
class Toolbox:
    """The tools of one chat, rooted at ``root`` (the current directory)."""

    root: Path
    allow_bash: bool = False

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def schemas(self) -> list[dict[str, Any]]:
        return [s for name, s in SCHEMAS.items() if name != "bash" or self.allow_bash]

    def run(self, name: str, arguments: str) -> tuple[str, bool]:
        """(result text, is_error) of one call; never raises for the model's mistakes."""
        tools: dict[str, Callable[..., str]] = {
            "ls": self.ls, "read": self.read, "glob": self.glob, "rg": self.rg, "bash": self.bash,
        }
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ToolError("arguments must be a JSON object")
            if name not in tools:
                raise ToolError(
                    f"no tool named {name!r}; tools: {', '.join(s['function']['name'] for s in self.schemas())}"
                )
            return _cap(tools[name](**args)), False
        except ValueError as e:
            return f"error: arguments are not JSON: {e}", True
        except TypeError as e:
            return f"error: {name}: {e}", True
        except ToolError as e:
            return f"error: {e}", True
        except OSError as e:
            return f"error: {e.strerror or e}", True

    # -- paths -------------------------------------------------------------------------------------

    def inside(self, path: str) -> Path:
        """``path`` (relative to the folder, or absolute) resolved; ToolError when it leaves the folder."""
        if "\x00" in path:
            raise ToolError("a path cannot hold a NUL byte")
        target = (self.root / os.path.expanduser(path)).resolve()
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"{path!r} is outside the working folder {self.root}; only paths inside it can be used")
        return target

    def _show(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return rel if rel != "." else "."

    # -- tools -------------------------------------------------------------------------------------

    def ls(self, path: str = ".") -> str:
        where = self.inside(path)
        if not where.is_dir():
            raise ToolError(f"{path!r} is not a directory")
        names = sorted(os.listdir(where))[:MAX_ENTRIES]
        return "\n".join(n + "/" if (where / n).is_dir() else n for n in names)

    def read(self, path: str, offset: int = 1, limit: int | None = None) -> str:
        where = self.inside(path)
        if not where.is_file():
            raise ToolError(f"{path!r} is not a file")
        lines = where.read_text(errors="replace").splitlines()
        start = max(int(offset), 1) - 1
        end = len(lines) if limit is None else start + max(int(limit), 0)
        return "\n".join(lines[start:end])

    def glob(self, pattern: str, path: str = ".") -> str:
        where = self.inside(path)
        if os.path.isabs(pattern) or ".." in Path(pattern).parts:
            raise ToolError("the pattern must be relative and without '..'")
        found = []
        for match in sorted(where.glob(pattern)):
            try:
                self.inside(str(match))
            except ToolError:
                continue  # a symlink out of the folder
            found.append(self._show(match) + ("/" if match.is_dir() else ""))
            if len(found) >= MAX_ENTRIES:
                break
        return "\n".join(found) or "no files match"

    def rg(self, args: str) -> str:
        try:
            words = shlex.split(args)
        except ValueError as e:
            raise ToolError(f"cannot split the arguments: {e}") from None
        if not words:
            raise ToolError("rg needs a pattern")
        for word in words[1:]:
            if not word.startswith("-"):
                self.inside(word)  # a path argument (ripgrep follows a symlink given as one) must stay inside
        if any(w in ("--follow", "-L", "--pre") or w.startswith("--pre=") for w in words):
            raise ToolError("--follow and --pre are not allowed (they could leave the folder)")
        binary = shutil.which("rg")
        if binary is None:
            return self._python_rg(words)
        proc = subprocess.run(
            [binary, "--color=never", "--no-heading", "-n", *words],
            cwd=self.root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=BASH_TIMEOUT_S,
            check=False,
        )
        if proc.returncode == 1:
            return "No matches found"
        if proc.returncode != 0:
            raise ToolError(proc.stderr.strip() or f"rg exited with {proc.returncode}")
        return proc.stdout

    def _python_rg(self, words: list[str]) -> str:
        """ripgrep's plain use without ripgrep: ``PATTERN [PATH...]`` (``-i`` understood, other flags ignored)."""
        flags = re.IGNORECASE if "-i" in words else 0
        plain = [w for w in words if not w.startswith("-")]
        try:
            pattern = re.compile(plain[0], flags)
        except (re.error, IndexError) as e:
            raise ToolError(f"bad pattern: {e}") from None
        starts = [self.inside(p) for p in plain[1:]] or [self.root]
        hits: list[str] = []
        for start in starts:
            files = [start] if start.is_file() else sorted(p for p in start.rglob("*") if p.is_file())
            for file in files:
                if any(part.startswith(".") for part in file.relative_to(self.root).parts):
                    continue  # hidden, as ripgrep
                try:
                    self.inside(str(file))
                    text = file.read_text()
                except (ToolError, OSError, UnicodeDecodeError):
                    continue
                for n, line in enumerate(text.splitlines(), 1):
                    if pattern.search(line):
                        hits.append(f"{self._show(file)}:{n}:{line}")
        return "\n".join(hits) or "No matches found"

    def bash(self, command: str) -> str:
        if not self.allow_bash:
            raise ToolError("bash is not allowed; the user must start gpumod prompt with --allow-bash")
        try:
            proc = subprocess.run(
                ["bash", "-c", command], cwd=self.root, capture_output=True, text=True,
                stdin=subprocess.DEVNULL, timeout=BASH_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(f"the command timed out after {BASH_TIMEOUT_S:g} s") from None
        text = proc.stdout + (("\n" if proc.stdout else "") + proc.stderr if proc.stderr else "")
        return text + (f"\n(exit status {proc.returncode})" if proc.returncode else "")


def _cap(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + f"\n... (cut at {MAX_OUTPUT} characters)"

