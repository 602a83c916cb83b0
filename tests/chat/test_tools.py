"""The agent's tools stay inside the working folder; bash exists only when allowed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from gpumod.chat.tools import Toolbox


@pytest.fixture
def box(tmp_path: Path) -> Toolbox:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "alpha.txt").write_text("one\ntwo\nthree\n")
    (work / "src" / "main.py").write_text("print('hi')\n# TODO: more\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    return Toolbox(work)


def call(box: Toolbox, name: str, **args: object) -> tuple[str, bool]:
    return box.run(name, json.dumps(args))


def test_ls_read_glob_rg_inside_the_folder(box: Toolbox) -> None:
    assert call(box, "ls") == ("alpha.txt\nsrc/", False)
    assert call(box, "read", path="alpha.txt", offset=2, limit=1) == ("two", False)
    assert call(box, "glob", pattern="**/*.py") == ("src/main.py", False)
    text, bad = call(box, "rg", args="TODO")
    assert not bad and "src/main.py:2:# TODO: more" in text
    assert call(box, "rg", args="nowhere-to-be-found") == ("No matches found", False)


def test_python_rg_fallback_when_ripgrep_is_missing(box: Toolbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpumod.chat.tools.shutil.which", lambda name: None)
    assert call(box, "rg", args="-i todo src") == ("src/main.py:2:# TODO: more", False)


@pytest.mark.parametrize(
    "name,args",
    [
        ("read", {"path": "../secret.txt"}),
        ("read", {"path": "/etc/passwd"}),
        ("ls", {"path": "src/../.."}),
        ("glob", {"pattern": "../*.txt"}),
        ("rg", {"args": "SECRET .."}),
    ],
)
def test_paths_leaving_the_folder_are_refused(box: Toolbox, name: str, args: dict) -> None:
    text, bad = call(box, name, **args)
    assert bad and ("outside the working folder" in text or "without '..'" in text)
    assert "TOP SECRET" not in text


def test_a_symlink_out_of_the_folder_is_refused(box: Toolbox, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.txt", box.root / "link.txt")
    text, bad = call(box, "read", path="link.txt")
    assert bad and "outside the working folder" in text
    assert "link.txt" not in call(box, "glob", pattern="*.txt")[0]


def test_bash_is_refused_unless_allowed(box: Toolbox) -> None:
    assert "bash" not in [s["function"]["name"] for s in box.schemas()]
    text, bad = call(box, "bash", command="echo leaked")
    assert bad and "--allow-bash" in text and "leaked" not in text
    allowed = Toolbox(box.root, allow_bash=True)
    assert "bash" in [s["function"]["name"] for s in allowed.schemas()]
    assert call(allowed, "bash", command="pwd") == (f"{box.root}\n", False)


def test_bad_arguments_come_back_as_errors(box: Toolbox) -> None:
    assert box.run("read", "{not json")[1] is True
    assert box.run("read", "{}")[1] is True  # path missing
    text, bad = box.run("rm", "{}")
    assert bad and "no tool named 'rm'" in text


def test_rg_refuses_a_symlink_path_argument_that_leads_out(box: Toolbox, tmp_path: Path) -> None:
    os.symlink(tmp_path, box.root / "up")  # ripgrep follows a symlink named on its command line
    text, bad = call(box, "rg", args="SECRET up")
    assert bad and "outside the working folder" in text and "TOP SECRET" not in text
