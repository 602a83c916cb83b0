"""Load a spec repository: every YAML document below a directory, validated, cross-checked.

``load_specs`` either returns a complete, consistent ``SpecSet`` or raises one ``SpecError``
holding every problem found (``path:line: message``), so a user fixes them all in one go: a
document with a mistake is still cross-checked on its valid part (``gpumod.spec.partial``), and a
repository whose files hold no document at all is a problem too, not an empty success. Files
are read in sorted order and the result is sorted by name: the same repository gives the same
``SpecSet`` whatever order the file system lists it in.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gpumod.errors import Problem, SpecError
from gpumod.spec.checks import check_specs, duplicate_problems
from gpumod.spec.models import ModeSpec, PodSpec, ServiceSpec
from gpumod.spec.partial import salvage
from gpumod.spec.presets import PresetCatalog
from gpumod.spec.source import Document, parse_yaml, validate

KINDS: dict[str, type[BaseModel]] = {"Pod": PodSpec, "Service": ServiceSpec, "Mode": ModeSpec}
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SpecSet:
    """A valid spec repository: its pods, services and modes (each sorted by name)."""

    root: Path
    pods: tuple[PodSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    modes: tuple[ModeSpec, ...] = ()
    documents: Mapping[tuple[str, str], Document] = field(default_factory=dict, compare=False, repr=False)

    def where(self, kind: str, name: str, *loc: Any) -> tuple[str, int]:
        """File and line of a document, or of a key inside it (line 0 when not loaded from a file)."""
        doc = self.documents.get((kind, name))
        if doc is None:
            return str(self.root), 0
        return doc.path, doc.line_of(*loc)

    def source(self, kind: str, name: str, *loc: Any) -> str:
        """``"path:line"`` of a document (or of a key inside it)."""
        path, line = self.where(kind, name, *loc)
        return f"{path}:{line}"

    def env_sources(self, pod: str, service: str) -> dict[str, str]:
        """``"path:line"`` of the ``env`` entry each variable of a service comes from (its own over its pod's)."""
        out: dict[str, str] = {}
        for kind, spec in (("Pod", self.pod(pod)), ("Service", self.service(service))):
            for key in (spec.env or {}) if spec is not None else {}:
                out[key] = self.source(kind, spec.name, "env", key)  # type: ignore[union-attr]
        return out

    def pod(self, name: str) -> PodSpec | None:
        return next((p for p in self.pods if p.name == name), None)

    def service(self, name: str) -> ServiceSpec | None:
        return next((s for s in self.services if s.name == name), None)

    def mode(self, name: str) -> ModeSpec | None:
        return next((m for m in self.modes if m.name == name), None)


def load_specs(path: str | Path, catalog: PresetCatalog | None = None) -> SpecSet:
    """Read, validate and cross-check every spec under ``path`` (a directory or one file)."""
    root = Path(path)
    catalog = catalog if catalog is not None else PresetCatalog.load()
    problems: list[Problem] = []
    files = spec_files(root, problems)
    loaded: list[tuple[str, str, Document, BaseModel]] = []
    broken: set[tuple[str, str]] = set()  # documents that failed validation: no "not defined" for them
    partial: dict[tuple[str, str], frozenset[str]] = {}  # invalid documents checked on their valid part
    documents = 0
    for file in files:
        shown = display_path(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else err  # no path: it is in front
            problems.append(Problem(shown, 1, f"cannot read the file: {why}"))
            continue
        docs, bad = parse_yaml(text, shown)
        problems.extend(bad)
        documents += len(docs)
        for doc in docs:
            item = _load_document(doc, problems)
            if item is not None:
                kind, name, part, spec, unknown = item
                loaded.append((kind, name, part, spec))
                if unknown is not None:
                    partial[(kind, name)] = unknown
            elif isinstance(doc.data, dict) and isinstance(doc.data.get("name"), str):
                broken.add((str(doc.data.get("kind")), doc.data["name"]))
    if files and not documents and not problems:
        shown = display_path(root)
        what = "it holds" if root.is_file() else "its YAML files hold"
        problems.append(
            Problem(shown, 0, f"no specs found in {shown}: {what} no documents (only comments or nothing); "
                    "add documents with kind: Pod, Service and Mode")
        )
    problems.extend(duplicate_problems((k, n, d.path, d.line) for k, n, d, _ in loaded))
    first: dict[tuple[str, str], tuple[Document, BaseModel]] = {}
    for kind, name, doc, spec in loaded:
        first.setdefault((kind, name), (doc, spec))
    specs = SpecSet(
        root=root,
        pods=_sorted(first, "Pod"),
        services=_sorted(first, "Service"),
        modes=_sorted(first, "Mode"),
        documents={key: doc for key, (doc, _) in first.items()},
    )
    problems.extend(check_specs(specs, catalog, broken=frozenset(broken), partial=partial))
    if problems:
        raise SpecError(problems)
    return specs


def _sorted(first: dict[tuple[str, str], tuple[Document, BaseModel]], kind: str) -> tuple[Any, ...]:
    return tuple(spec for (k, _), (_, spec) in sorted(first.items()) if k == kind)


def _load_document(
    doc: Document, problems: list[Problem]
) -> tuple[str, str, Document, BaseModel, frozenset[str] | None] | None:
    """``(kind, name, document, model, unknown keys)``; a document with mistakes comes back as its
    valid part (``gpumod.spec.partial``) with the keys it left unknown, or None when nothing is left."""
    data = doc.data
    if not isinstance(data, dict):
        what = "list" if isinstance(data, list) else type(data).__name__
        problems.append(
            Problem(doc.path, doc.line, f"a spec document is a mapping with kind and name, not a {what}")
        )
        return None
    kind = data.get("kind")
    if kind is None:
        problems.append(Problem(doc.path, doc.line, "missing key 'kind'; set kind: Pod, Service or Mode"))
        return None
    if not isinstance(kind, str):
        problems.append(Problem(doc.path, doc.line_of("kind"), f"kind must be Pod, Service or Mode, got {kind!r}"))
        return None
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, list(KINDS), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else "use Pod, Service or Mode"
        problems.append(Problem(doc.path, doc.line_of("kind"), f"unknown kind '{kind}'; {hint}"))
        return None
    spec, bad = validate(KINDS[kind], doc)
    problems.extend(bad)
    if spec is not None and not doc.refused:
        return kind, spec.name, doc, spec, None  # type: ignore[attr-defined]
    salvaged = salvage(KINDS[kind], doc)
    if salvaged is None:
        return None
    spec, part, unknown = salvaged
    return kind, spec.name, part, spec, unknown  # type: ignore[attr-defined]


def spec_files(root: Path, problems: list[Problem]) -> list[Path]:
    """The YAML files of a spec repository, sorted; hidden files and folders are skipped."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        message = "no such file or directory; give the spec directory or a YAML file"
        problems.append(Problem(display_path(root), 0, message))
        return []
    found: list[Path] = []
    _collect(root, found)
    if not found:
        shown = display_path(root)
        message = f"no spec files found under {shown}; add *.yaml files with kind: Pod, Service and Mode"
        problems.append(Problem(shown, 0, message))
    return sorted(_once(root, found), key=lambda p: p.relative_to(root).parts)


def _children(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _collect(folder: Path, found: list[Path]) -> None:
    for entry in _children(folder):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if not entry.is_symlink():  # no loops through linked folders
                _collect(entry, found)
        elif entry.name.endswith(SUFFIXES):
            found.append(entry)


def _once(root: Path, files: list[Path]) -> list[Path]:
    """``files`` without a second path to the same file (a symlink next to its target is read
    once, not reported as duplicating every document of it); the file itself wins over a link."""
    kept: dict[Path, Path] = {}
    for path in sorted(files, key=lambda p: (p.is_symlink(), p.relative_to(root).parts)):
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: left for the reader to report
            real = path
        kept.setdefault(real, path)
    return list(kept.values())


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, else as given."""
    try:
        full = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        full = path.absolute()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)
