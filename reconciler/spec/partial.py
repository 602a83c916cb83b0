"""What is valid in an invalid document, so one run reports every problem of every document.

A document with a mistake (an unknown key, a bad env name, a control character) still says
things worth checking against the others: the pod's mode, a service's Docker settings, a mode's
members. ``salvage`` drops each value pydantic (or the YAML layer) refused, a top-level key or
one item of a top-level list or mapping, and builds the model from the rest. The checks then see
that partial document, together with the keys whose value is now *unknown* (dropped, or
misspelled and so missing): a check that reads an unknown key stays silent rather than report
a consequence of the mistake already reported ("no driver" after "unknown key 'drivr'").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from gpumod.spec.source import Document, close_key, error_locs

if TYPE_CHECKING:
    from gpumod.spec.nodes import Loc

M = TypeVar("M", bound=BaseModel)


def salvage(model: type[M], doc: Document) -> tuple[M, Document, frozenset[str]] | None:
    """The model built from the valid part of ``doc``, that part, and the top-level keys left unknown.

    None when nothing useful is left (a required key such as ``name`` is itself wrong or missing).
    """
    try:
        model.model_validate(doc.data)
        errors: list[Any] = []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    located = error_locs(doc, errors)
    unknown: set[str] = set()
    for loc, err in located:
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            meant = close_key(model, loc)
            if meant is not None and meant not in doc.data:
                unknown.add(meant)  # 'drivr: vllm': the driver is unknown, not absent
    part = _pruned(doc, [loc for loc, _ in located] + list(doc.refused))
    if part is None:
        return None
    try:
        spec = model.model_validate(part.data)
    except ValidationError:
        return None
    dropped = {key for key in doc.data if key not in part.data or part.data[key] != doc.data[key]}
    return spec, part, frozenset(unknown | dropped)


def _pruned(doc: Document, locs: Iterable[Loc]) -> Document | None:
    """``doc`` without the values at ``locs``: a top-level key, or one item/entry of a top-level list/mapping."""
    data = doc.data
    if not isinstance(data, dict):
        return None
    keys: set[Any] = set()
    items: dict[Any, set[Any]] = {}
    for loc in locs:
        if not loc:
            return None  # the document as a whole is wrong
        top = loc[0]
        if top not in data:
            continue  # a missing key: nothing to drop (building the rest fails if it is required)
        if len(loc) >= 2 and isinstance(data[top], (list, dict)):
            items.setdefault(top, set()).add(loc[1])
        else:
            keys.add(top)
    out: dict[Any, Any] = {}
    renumber: dict[Any, dict[int, int]] = {}
    for key, value in data.items():
        if key in keys:
            continue
        drop = items.get(key)
        if drop and isinstance(value, list):
            kept = [i for i in range(len(value)) if i not in drop]
            renumber[key] = {old: new for new, old in enumerate(kept)}
            value = [value[i] for i in kept]
        elif drop and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in drop}
        out[key] = value
    lines: dict[Loc, int] = {}
    for loc, line in doc.lines.items():
        if loc and loc[0] in renumber and len(loc) > 1:
            new = renumber[loc[0]].get(loc[1])
            if new is None:
                continue
            loc = (loc[0], new, *loc[2:])
        lines[loc] = line
    return Document(path=doc.path, line=doc.line, data=out, lines=lines)
