"""Verbs that write the specs, then reconcile: ``switch_mode``, ``start_service``, ``stop_service``.

Git stays the truth (issue 8): a switch edits the pod's ``mode:`` line in the spec the user keeps
in git (``gpumod.spec.edit``; only that line changes), plans the result (a mode that does not fit
is refused with ``InfeasibleError`` and the edit undone: nothing touched, nothing committed),
optionally commits exactly the edited files (``gpumod.gitcommit``), then applies. ``--commit`` is
refused before anything is edited when a spec file already holds changes of the user's: the
commit would carry them along.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypedDict

from gpumod import gitcommit
from gpumod.core.model import Plan
from gpumod.errors import GpumodError, InfeasibleError
from gpumod.ops.apply import ApplyResult, apply
from gpumod.ops.events import Reporter
from gpumod.ops.plan import plan
from gpumod.spec.edit import SpecEdit, add_service, remove_service_from_mode, set_pod_mode

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["EditOptions", "SwitchResult", "start_service", "stop_service", "switch_mode"]


@dataclass(frozen=True)
class SwitchResult:
    """What a spec edit did (its changed lines), the commit made of it, and the apply after it."""

    edit: SpecEdit
    commit: str | None = None  # the new commit's hash (--commit)
    applied: ApplyResult | None = None  # None with --no-apply

    @property
    def exit_code(self) -> int:
        return self.applied.exit_code if self.applied is not None else 0

    def to_json(self) -> dict[str, Any]:
        e = self.edit
        return {
            "summary": e.summary,
            "pod": e.pod,
            "mode": e.mode,
            "previous_mode": e.previous_mode,
            "service": e.service,
            "changed": e.changed,
            "files": [str(p) for p in e.paths],
            "shared_with": list(e.shared_with),
            "commit": self.commit,
            "apply": self.applied.to_json() if self.applied is not None else None,
        }


class EditOptions(TypedDict, total=False):
    """The options every spec-editing verb takes (their defaults are ``_edit_then_apply``'s)."""

    commit: bool  # git commit exactly the edited files (refused with uncommitted changes)
    apply_after: bool  # False: only edit the specs (--no-apply)
    confirm: Callable[[Plan], bool]  # asked with the plan before it is applied
    reporter: Reporter | None


async def switch_mode(
    spec_dir: str | Path, mode: str, pod: str | None = None, **options: Unpack[EditOptions]
) -> SwitchResult:
    """Set the pod's ``mode:`` (only that line changes), commit it if asked, then apply."""
    return await _edit_then_apply(spec_dir, lambda: set_pod_mode(spec_dir, pod, mode), **options)


async def start_service(
    spec_dir: str | Path, service_doc: Mapping[str, Any], pod: str | None = None, **options: Unpack[EditOptions]
) -> SwitchResult:
    """Write a Service document, add it to the pod's mode, then apply."""
    return await _edit_then_apply(spec_dir, lambda: add_service(spec_dir, pod, service_doc), **options)


async def stop_service(
    spec_dir: str | Path, name: str, pod: str | None = None, **options: Unpack[EditOptions]
) -> SwitchResult:
    """Remove a service from the pod's mode (its document stays), then apply."""
    return await _edit_then_apply(spec_dir, lambda: remove_service_from_mode(spec_dir, pod, name), **options)


async def _edit_then_apply(
    spec_dir: str | Path,
    edit_specs: Callable[[], SpecEdit],
    *,
    commit: bool = False,
    apply_after: bool = True,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    reporter: Reporter | None = None,
) -> SwitchResult:
    if commit:
        dirty = gitcommit.uncommitted(spec_dir)
        if dirty:
            raise GpumodError(
                f"--commit refused: uncommitted changes in {', '.join(dirty)}; nothing was edited",
                hint="commit or stash them first, or run without --commit",
            )
    before = _spec_files(spec_dir)
    edit = edit_specs()
    pods = [edit.pod, *edit.shared_with]
    if edit.changed:
        found = await plan(spec_dir, pods)  # a mode that does not fit is refused, and the edit undone
        infeasible = [p.infeasible for p in found.plan.pods if p.infeasible is not None]
        if infeasible:
            _restore(before, edit.paths)
            raise InfeasibleError(infeasible)
    sha = gitcommit.commit(spec_dir, edit.paths, edit.summary) if commit and edit.changed else None
    applied = await apply(spec_dir, pods, confirm=confirm, reporter=reporter) if apply_after else None
    return SwitchResult(edit, sha, applied)


def _spec_files(spec_dir: str | Path) -> dict[Path, bytes]:
    """The bytes of every spec file, to put back when an edit turns out not to fit."""
    root = Path(spec_dir)
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.suffix in (".yaml", ".yml")]
    return {p.resolve(): p.read_bytes() for p in paths if p.is_file()}


def _restore(before: dict[Path, bytes], edited: tuple[Path, ...]) -> None:
    for path in edited:
        original = before.get(Path(path).resolve())
        if original is not None:
            Path(path).write_bytes(original)
