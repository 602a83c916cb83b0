"""Helpers for the spec tests: write a small spec repo and collect its problems as text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``repo(name=text, ...)`` writes files into a fresh spec dir (cwd = its parent) and returns it."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "specs"
    root.mkdir()

    def write(**files: str) -> Path:
        for name, text in files.items():
            path = root / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return root

    return write

