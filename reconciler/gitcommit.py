"""Commit an edit of the specs to git, so the repository stays the record of what a pod should run.

``gpumod mode switch --commit`` (and the same verb in the MCP server and the TUI) edits a spec
with ``gpumod.spec.edit`` and then commits exactly the files it changed: never anything else the
user had staged. It lives outside ``gpumod.spec`` because it runs a program (the spec language
stays pure). ``git`` runs with an argv list, never through a shell.

    uncommitted(spec_dir)            -> files under spec_dir that differ from HEAD (check before editing)
    commit(spec_dir, paths, message) -> the new commit's hash

A face asked to ``--commit`` calls ``uncommitted`` first and refuses when a spec file already
holds changes of the user's: the commit would carry them along with the edit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from gpumod.errors import GpumodError


class GitError(GpumodError):
    """Committing the edited specs failed (the edit itself stays in the files)."""

    hint = "the spec files are edited but not committed; commit them yourself with git, or run without --commit"


class NotAGitRepoError(GitError):
    hint = "run `git init` in the spec repository, or run without --commit"


class NothingToCommitError(GitError):
    hint = "the files already hold what was asked; nothing to commit"


def commit(spec_dir: str | Path, paths: Iterable[str | Path], message: str) -> str:
    """``git add`` and ``git commit --only`` these paths (and nothing else); the new commit's hash."""
    root = _toplevel(spec_dir)
    relative = [_inside(root, Path(p)) for p in paths]
    if not relative:
        raise NothingToCommitError("no files to commit")
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *relative)
    if not (status or "").strip():
        raise NothingToCommitError(f"nothing to commit: {', '.join(relative)} unchanged since the last commit")
    _git(root, "add", "--", *relative)
    _git(root, "commit", "--quiet", "--only", "-m", message, "--", *relative)
    return (_git(root, "rev-parse", "HEAD") or "").strip()


def uncommitted(spec_dir: str | Path) -> tuple[str, ...]:
    """Files under ``spec_dir`` (relative to the repository) that are changed, staged or untracked."""
    folder = Path(spec_dir)
    root = _toplevel(spec_dir)
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "-z", "--", _inside(root, folder)) or ""
    return tuple(sorted(set(parse_porcelain_z(status))))


def parse_porcelain_z(text: str) -> list[str]:
    """The paths of ``git status --porcelain -z`` (a rename gives its new path only)."""
    paths: list[str] = []
    entries = iter(text.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if "R" in entry[:2] or "C" in entry[:2]:
            next(entries, None)  # the path it was renamed or copied from
    return paths


def _toplevel(spec_dir: str | Path) -> Path:
    folder = Path(spec_dir)
    folder = folder if folder.is_dir() else folder.parent
    top = _git(folder, "rev-parse", "--show-toplevel", failure=None)
    if top is None:
        raise NotAGitRepoError(f"{spec_dir} is not inside a git work tree; cannot commit the edit")
    return Path(top.strip())


def _inside(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise GitError(f"{path} is outside the git repository {root}; cannot commit it there") from None


_FAILED = object()


def _git(cwd: Path, *args: str, failure: object = _FAILED) -> str | None:
    """git's stdout; on failure ``failure`` if given, else a GitError with git's own words."""
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise GitError("git is not installed; cannot commit the edit") from None
    if done.returncode == 0:
        return done.stdout
    if failure is not _FAILED:
        return failure  # type: ignore[return-value]
    said = (done.stderr or done.stdout).strip().splitlines()
    raise GitError(f"git {args[0]} failed: {' / '.join(said[-3:]) if said else f'exit {done.returncode}'}")
