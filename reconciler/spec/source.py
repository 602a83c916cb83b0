"""Spec sources: YAML documents that remember the line of every key, and pydantic errors put back on them.

A user fixes a spec by going to a line, so every problem gpumod reports carries ``path:line``.
PyYAML's composer keeps marks on its nodes; ``parse_yaml`` turns each document into plain data
plus a map from every key path (``("health", "path")``, ``("services", 2)``) to its 1-based
line, after ``gpumod.spec.nodes`` has checked the node graph (alias bombs, recursive aliases,
control characters): hostile input is a problem at its line, never a traceback. ``validate`` runs a pydantic model on a
document and reports each error at the line of the key or list item it is about, in words that say what to do.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from gpumod.errors import Problem
from gpumod.spec.models import NAME_RE, NAME_RULE

if TYPE_CHECKING:
    import yaml

    from gpumod.spec.nodes import Loc

# PyYAML and gpumod.spec.nodes (which needs it) are imported when a file is parsed: a `plan` whose
# specs come from the spec cache (gpumod.spec_cache) parses none. libyaml's parser keeps the same
# marks and is ~10x faster; pure Python when it is not built in. None: chosen on first use.
_Loader: Any = None
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Document:
    """One YAML document: its data, where it starts, and the line of every key and list item.

    ``refused`` holds the key paths whose value the YAML layer already refused (a control
    character): pydantic's opinion about the same value is not reported again.
    """

    path: str
    line: int
    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict, compare=False, repr=False)
    refused: frozenset[Loc] = field(default=frozenset(), compare=False, repr=False)

    def line_of(self, *loc: Any) -> int:
        """Line of the deepest known prefix of ``loc`` (unknown parts, e.g. pydantic union tags, are skipped)."""
        cur: Loc = ()
        best = self.lines.get((), self.line)
        for part in loc:
            cand = (*cur, part)
            if cand in self.lines:
                cur, best = cand, self.lines[cand]
        return best


def parse_yaml(text: str, path: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of a YAML stream, and the problems that kept others from loading.

    Never raises on bad input: unreadable characters, syntax errors, recursive aliases, alias
    bombs and absurd nesting all come back as problems at their line (see ``gpumod.spec.nodes``).
    """
    global _Loader
    import yaml

    from gpumod.spec.nodes import MAX_DEPTH, LineMap, measure

    if _Loader is None:
        _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs: list[Document] = []
    problems: list[Problem] = []
    try:
        loader = _Loader(text)  # the pure-Python reader checks every character right here
    except yaml.YAMLError as err:
        return [], [_yaml_problem(path, err, text)]
    try:
        while True:
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
            except yaml.YAMLError as err:
                problems.append(_yaml_problem(path, err, text))
                break
            except RecursionError:  # the pure-Python composer on absurd nesting (libyaml stops at 1000)
                problems.append(Problem(path, 1, f"invalid YAML: values are nested more than {MAX_DEPTH} levels deep"))
                break
            if node is None:
                continue
            unsafe = measure(node)
            if unsafe is not None:
                problems.append(Problem(path, *unsafe))
                continue  # never built: building or walking it is what would blow up
            found = LineMap()
            found.walk(node)
            problems.extend(Problem(path, at, message) for at, message in found.problems)
            try:
                data = loader.construct_document(node)
            except yaml.YAMLError as err:
                problems.append(_yaml_problem(path, err, text))
                continue
            except (ValueError, TypeError, OverflowError) as err:  # e.g. a date like 2024-13-45
                problems.append(Problem(path, node.start_mark.line + 1, f"invalid YAML: cannot read a value: {err}"))
                continue
            if data is None:
                continue  # an empty document, e.g. a trailing '---'
            docs.append(
                Document(
                    path=path,
                    line=node.start_mark.line + 1,
                    data=data,
                    lines=found.lines,
                    refused=frozenset(found.refused),
                )
            )
    finally:
        loader.dispose()
    return docs, problems


def _yaml_problem(path: str, err: yaml.YAMLError, text: str) -> Problem:
    import yaml

    from gpumod.spec.nodes import control_character

    if isinstance(err, yaml.reader.ReaderError):
        # libyaml counts bytes, PyYAML characters: find the character itself
        char = chr(err.character) if isinstance(err.character, int) else str(err.character)
        at = text.find(char)
        line = text.count("\n", 0, at) + 1 if at >= 0 else 1
        return Problem(
            path, line,
            f"invalid YAML: the file holds a {control_character(char) or repr(char)}, which YAML does not allow; "
            "remove it",
        )
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        what = err.problem or err.context or "cannot parse"
        return Problem(
            path, mark.line + 1 if mark else 1,
            f"invalid YAML: {what}; check indentation, quoting and ':' after each key",
        )
    return Problem(path, 1, f"invalid YAML: {err}")


# --- pydantic errors -> problems ------------------------------------------------------------


def validate(model: type[M], doc: Document) -> tuple[M | None, list[Problem]]:
    """The model built from ``doc.data``, or None and one problem per distinct mistake."""
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    return None, [Problem(doc.path, line, msg) for line, msg in _explain(model, doc, errors)]


def error_locs(doc: Document, errors: list[Any]) -> list[tuple[Loc, dict[str, Any]]]:
    """Each pydantic error with the key path it is about in ``doc`` (union tags left out)."""
    return [(_split_loc(doc, tuple(err["loc"]), err["type"] == "missing")[0], err) for err in errors]


def close_key(model: type[BaseModel], loc: Loc) -> str | None:
    """The key the user probably meant by the unknown key at ``loc``, if one is close."""
    close = difflib.get_close_matches(str(loc[-1]), sorted(fields_at(model, loc[:-1])), n=1, cutoff=0.5)
    return close[0] if close else None


def _split_loc(doc: Document, loc: Loc, missing: bool) -> tuple[Loc, int | None]:
    """The parts of ``loc`` that exist in the data, and where the first union tag was skipped."""
    data_loc: Loc = ()
    tag_at: int | None = None
    for i, part in enumerate(loc):
        if part == "[key]":
            continue  # pydantic's marker for "the key itself" (e.g. an env name): the key's own line
        cand = (*data_loc, part)
        if cand in doc.lines:
            data_loc = cand
        elif missing and i == len(loc) - 1:
            data_loc = cand  # a missing key: keep its name
        elif tag_at is None:
            tag_at = len(data_loc)
    return data_loc, tag_at


def _explain(model: type[BaseModel], doc: Document, errors: list[Any]) -> list[tuple[int, str]]:
    # Errors under a union (e.g. a mode member: a name, or a mapping) come once per branch.
    # Keep the branch that got deepest into the data; merge branches that failed at the same spot.
    plain: list[tuple[Loc, dict[str, Any]]] = []
    unions: dict[Loc, list[tuple[Loc, dict[str, Any]]]] = {}
    for err in errors:
        data_loc, tag_at = _split_loc(doc, tuple(err["loc"]), err["type"] == "missing")
        if any(data_loc[:n] in doc.refused for n in range(1, len(data_loc) + 1)):
            continue  # the YAML layer refused this value already (see gpumod.spec.nodes)
        if tag_at is None:
            plain.append((data_loc, err))
        else:
            unions.setdefault(data_loc[:tag_at], []).append((data_loc, err))
    out = [(doc.line_of(*loc), _message(model, loc, err)) for loc, err in plain]
    for at, branch_errors in unions.items():
        deeper = [(loc, e) for loc, e in branch_errors if len(loc) > len(at)]
        if deeper:
            out.extend((doc.line_of(*loc), _message(model, loc, e)) for loc, e in deeper)
        else:
            msgs = list(dict.fromkeys(_lower(e["msg"]) for _, e in branch_errors))
            got = _got(branch_errors[0][1])
            out.append((doc.line_of(*at), f"{_where(at)}: {' or '.join(msgs)}{got}"))
    return list(dict.fromkeys(out))


def _message(model: type[BaseModel], loc: Loc, err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = sorted(fields_at(model, loc[:-1]))
        close = close_key(model, loc)
        if close:
            return f"unknown key '{key}'; did you mean '{close}'?"
        if 0 < len(allowed) <= 8:
            return f"unknown key '{key}'; remove it (allowed here: {', '.join(allowed)})"
        return f"unknown key '{key}'; remove it (`gpumod schema` lists every key)"
    if kind == "missing":
        return f"missing key '{loc[-1]}'{_in(loc[:-1])}; add it"
    if kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_RE.pattern:
        return (
            f"{_where(loc)}: {err['input']!r} is not a valid name; {NAME_RULE}"
        )
    if kind == "value_error":
        return f"{_where(loc)}: {err['msg'].removeprefix('Value error, ')}"
    if kind == "string_type" and isinstance(err.get("input"), bool):
        words = "yes/on/true" if err["input"] else "no/off/false"
        return (f"{_where(loc)}: YAML reads an unquoted {words} as the boolean {err['input']}, not a word; "
                f"put it in quotes (e.g. '{'on' if err['input'] else 'off'}')")
    return f"{_where(loc)}: {_lower(err['msg'])}{_got(err)}"


def _got(err: dict[str, Any]) -> str:
    value = err.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f", got {value!r}"
    return f", got a {_yaml_type(value)}"


def _yaml_type(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _lower(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _in(loc: Loc) -> str:
    return f" in {_where(loc)}" if loc else ""


def fields_at(model: type[BaseModel], loc: Loc) -> set[str]:
    """The keys a model accepts at ``loc`` (through nested models, lists, dicts and unions)."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            for alt in _alternatives(tp):
                if isinstance(alt, type) and issubclass(alt, BaseModel):
                    if isinstance(part, str) and part in alt.model_fields:
                        nxt.append(alt.model_fields[part].annotation)
                    elif part == alt.__name__:
                        nxt.append(alt)
                elif typing.get_origin(alt) is list and isinstance(part, int):
                    nxt.extend(typing.get_args(alt)[:1])
                elif typing.get_origin(alt) is dict and isinstance(part, str):
                    nxt.extend(typing.get_args(alt)[1:2])
        current = nxt
    names: set[str] = set()
    for tp in current:
        for alt in _alternatives(tp):
            if isinstance(alt, type) and issubclass(alt, BaseModel):
                names.update(alt.model_fields)
    return names


def _alternatives(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [a for arg in typing.get_args(tp) for a in _alternatives(arg)]
    return [tp]


def _where(loc: Loc) -> str:
    from gpumod.spec.nodes import where  # it imports PyYAML: only on the way to a problem

    return where(loc)
