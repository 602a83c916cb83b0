"""The spec files one edit touches, written together and kept only if the specs read back as asked.

``gpumod.spec.edit`` decides what to change; this module holds the files while it does: their
original bytes (CRLF, BOM and all), their new text, and the node tree of the document being
edited. ``commit`` writes every changed file atomically, loads the whole spec repository again
and compares it with the ``SpecSet`` the edit promised; any difference, an invalid result or an
interruption puts the original bytes back before the error leaves. The result is the changed
lines, as ``Hunk`` values a face can print.
"""

from __future__ import annotations

import difflib
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpumod.errors import Problem, SpecError
from gpumod.spec import yamltext
from gpumod.spec.loader import SpecSet, load_specs
from gpumod.spec.presets import PresetCatalog
from gpumod.spec.source import Document
from gpumod.spec.yamltext import SpecEditError


class EditRejectedError(SpecEditError):
    """The edited specs did not load, or did not read back as asked: the original files were restored."""

    hint = "nothing was changed (the files were restored); fix the problems above or edit the specs by hand"

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        self.problems = sorted(problems)
        super().__init__(message + "".join(f"\n  {p}" for p in self.problems))


@dataclass(frozen=True)
class Hunk:
    """Lines of one file replaced by others: ``line`` is the first one in the old file (1-based)."""

    path: Path
    line: int
    old: tuple[str, ...]
    new: tuple[str, ...]

    def __str__(self) -> str:
        out = [f"{self.path}:{self.line}:"]
        out += [f"- {text}" for text in self.old]
        out += [f"+ {text}" for text in self.new]
        return "\n".join(out)


@dataclass
class LocatedDoc:
    """A document of a file as a node tree (character offsets), its anchored nodes and the loader's lines."""

    node: yaml.Node
    shared: set[int]
    source: Document | None

    def line_of(self, *loc: Any) -> int:
        if self.source is not None:
            return self.source.line_of(*loc)
        return int(self.node.start_mark.line) + 1


class SpecFiles:
    """The files an edit touches, by real path: original bytes, new text, and the path to show."""

    def __init__(self) -> None:
        self.original: dict[Path, bytes | None] = {}
        self.current: dict[Path, str] = {}
        self.shown: dict[Path, Path] = {}

    def text(self, path: Path) -> str:
        """The text of ``path`` as edited so far ("" for a file that does not exist yet)."""
        real = path.resolve()
        if real not in self.current:
            data = real.read_bytes() if real.exists() else None
            try:
                text = data.decode("utf-8") if data is not None else ""
            except UnicodeDecodeError as err:
                raise SpecEditError(f"{path}: not UTF-8 text ({err}); gpumod will not rewrite it") from None
            self.original[real], self.current[real], self.shown[real] = data, text, path
        return self.current[real]

    def put(self, path: Path, text: str) -> None:
        self.text(path)
        self.current[path.resolve()] = text

    def document(self, specs: SpecSet, kind: str, name: str) -> tuple[Path, str, LocatedDoc]:
        """The file, text and node tree of the ``kind`` document called ``name``."""
        where, line = specs.where(kind, name)
        path = Path(where)
        text = self.text(path)
        try:
            parsed = yamltext.parse(text)
        except yaml.YAMLError as err:
            raise SpecEditError(f"{path}: cannot parse it again ({err}); was it changed meanwhile?") from None
        for node in parsed.documents:
            if node.start_mark.line + 1 == line and isinstance(node, yaml.MappingNode):
                found = yamltext.value_of(node, "name")
                if found is not None and found[1].value == name:
                    return path, text, LocatedDoc(node, parsed.shared, specs.documents.get((kind, name)))
        raise SpecEditError(f"{path}:{line}: {kind} {name} is no longer there; was the file changed meanwhile?")

    def commit(
        self, spec_dir: str | Path, catalog: PresetCatalog | None, expected: SpecSet, what: str
    ) -> tuple[Hunk, ...]:
        """Write every changed file, reload, and keep the result only if it reads back as ``expected``."""
        changed = {p: t for p, t in self.current.items() if self.original[p] != t.encode("utf-8")}
        written: list[Path] = []
        try:
            for real, text in changed.items():
                _write(real, text.encode("utf-8"), new=self.original[real] is None)
                written.append(real)
            try:
                after = load_specs(spec_dir, catalog)
            except SpecError as err:
                raise EditRejectedError(f"{what}: the specs would not be valid any more", err.problems) from None
            if after != expected:
                raise EditRejectedError(f"{what}: the edited specs did not read back as asked; this is a bug in gpumod")
        except BaseException:
            for real in written:
                original = self.original[real]
                if original is None:
                    real.unlink(missing_ok=True)
                else:
                    _write(real, original, new=False)
            raise
        return tuple(h for real, text in changed.items() for h in _hunks(self.shown[real], self.original[real], text))


def _write(path: Path, data: bytes, *, new: bool) -> None:
    """Replace a file atomically (a crash leaves the old or the new text, never half of one)."""
    if new:
        with path.open("xb") as out:
            out.write(data)
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
    temp = Path(tmp.name)
    try:
        temp.chmod(mode)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _hunks(path: Path, old: bytes | None, new: str) -> list[Hunk]:
    before = (old or b"").decode("utf-8").splitlines()
    after = new.splitlines()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return [
        Hunk(path, i1 + 1, tuple(before[i1:i2]), tuple(after[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]
