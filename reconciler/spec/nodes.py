"""YAML node graphs read safely: every node walked once, merge keys understood, hostile input refused.

A YAML document is a graph, not a tree: an alias is the *same* node again. A 600-byte file can
stand for a billion values ("billion laughs": nine lists of nine aliases, nine levels deep) or
contain itself (``command: &c [x, *c]``). PyYAML builds shared Python objects for aliases, but
whatever walks the result afterwards (line numbers, pydantic, a hash) expands it, and PyYAML's
own merge (``<<``) really copies. So before anything is built:

* ``measure`` walks the graph once per node (memoised by node identity) and refuses a document
  that contains itself, nests too deeply, or expands to more than ``MAX_VALUES`` values;
* ``LineMap`` then records the line of every key and list item, walking each node once (a path
  through an alias gets the alias's line, not its subtree), reports duplicate keys (a key that
  overrides a ``<<`` merged one is legal YAML, not a duplicate), and refuses control characters
  in any string: spec values end up in systemd units and command lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

Loc = tuple[Any, ...]
MAX_VALUES = 100_000  # per document, aliases expanded; a real spec document has a few hundred
MAX_DEPTH = 64
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
BINARY_TAG = "tag:yaml.org,2002:binary"
TEXT_KEYS = ("description", "notes")  # a document's free text: may hold newlines and tabs (never in a unit)
_NAMES = {0: "NUL", 9: "tab", 10: "newline", 13: "carriage return", 27: "escape", 127: "DEL"}


def line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def control_character(text: str, *, free_text: bool = False) -> str | None:
    """How to name the first control character of ``text`` (C0, DEL, C1), or None when it has none."""
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            if free_text and ch in "\n\t":
                continue
            name = _NAMES.get(code)
            return f"{name} (U+{code:04X})" if name else f"U+{code:04X}"
    return None


def _children(node: yaml.Node) -> Iterator[tuple[yaml.Node, int]]:
    """Each child node with the line of the edge to it (a mapping entry's key line)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key, line(key)
            yield value, line(key)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield item, line(node)


def measure(root: yaml.Node) -> tuple[int, str] | None:
    """``(line, message)`` when the document cannot be built safely, None when it can.

    Iterative and memoised by node identity: the cost is the number of distinct nodes, however
    many times aliases repeat them. The weight of a node is its size with aliases expanded.
    """
    weight: dict[int, int] = {}
    active: set[int] = {id(root)}
    stack: list[tuple[yaml.Node, Iterator[tuple[yaml.Node, int]], list[int]]] = [(root, _children(root), [1])]
    while stack:
        node, children, total = stack[-1]
        nxt = next(children, None)
        if nxt is None:
            stack.pop()
            active.discard(id(node))
            weight[id(node)] = total[0]
            if stack:
                stack[-1][2][0] += total[0]
            if total[0] > MAX_VALUES:
                return line(root), (
                    f"this document expands to more than {MAX_VALUES} values through its aliases "
                    "(an alias bomb?); write the values out instead of nesting aliases"
                )
            continue
        child, at = nxt
        if id(child) in active:
            return at, (
                "a recursive alias: this value contains an alias to itself (or to a value it is part of); "
                "YAML aliases must not refer to a value they are inside of"
            )
        if id(child) in weight:
            total[0] += weight[id(child)]
            continue
        if len(stack) >= MAX_DEPTH:
            return line(child), f"values are nested more than {MAX_DEPTH} levels deep; a spec is a few levels deep"
        active.add(id(child))
        stack.append((child, _children(child), [1]))
    return None


_KEY_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def key_of(node: yaml.Node) -> Any:
    """A mapping key as the constructor will build it (strings as written), hashable."""
    if isinstance(node, yaml.ScalarNode) and node.tag == STR_TAG:
        return node.value
    if isinstance(node, yaml.ScalarNode):
        try:
            key = _KEY_CONSTRUCTOR.construct_document(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return node.value
        try:
            hash(key)
        except TypeError:
            return node.value
        return key
    return f"<{node.id}>"


def _merge_sources(value: yaml.Node) -> list[yaml.Node]:
    if isinstance(value, yaml.MappingNode):
        return [value]
    if isinstance(value, yaml.SequenceNode):
        return [n for n in value.value if isinstance(n, yaml.MappingNode)]
    return []  # not a mapping: the constructor reports it


def _merged_keys(node: yaml.MappingNode, seen: set[int]) -> Iterator[tuple[Any, yaml.Node]]:
    """The keys ``node`` brings into a mapping that merges it, in merge order (YAML merge semantics)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    merges = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            merges.append(value_node)
        else:
            yield key_of(key_node), key_node
    for value_node in merges:
        for source in _merge_sources(value_node):
            yield from _merged_keys(source, seen)


@dataclass
class LineMap:
    """The line of every key path of one document, and what is wrong with its keys and strings.

    ``problems`` holds ``(line, message)``; ``refused`` the key paths whose string value (or key)
    was refused, so later checks do not report the same value again.
    """

    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)
    refused: set[Loc] = field(default_factory=set)
    _seen: set[int] = field(default_factory=set)

    def walk(self, node: yaml.Node, path: Loc = ()) -> None:
        """Call on a document ``measure`` accepted: the depth is bounded, each node is entered once."""
        self.lines.setdefault(path, line(node))
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            self._scalar(node, path)
        elif isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> None:
        seen: dict[Any, int] = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
                continue
            key = key_of(key_node)
            at = line(key_node)
            if key in seen:
                self.problems.append((at, f"duplicate key '{key}' (first at line {seen[key]}); keep only one"))
                continue
            seen[key] = at
            self.lines.setdefault((*path, key), at)
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == STR_TAG:
                bad = control_character(key_node.value)
                if bad:
                    self.refused.add((*path, key))
                    prefix = f"{where(path)}: " if path else ""
                    self.problems.append((at, f"{prefix}a key contains a {bad}; remove it"))
            self.walk(value_node, (*path, key))
        for value_node in merges:
            for source in _merge_sources(value_node):
                self.walk(source, path)  # a source defined right here: its own keys and strings
                for key, key_node in _merged_keys(source, set()):
                    self.lines.setdefault((*path, key), line(key_node))  # explicit keys win

    def _scalar(self, node: yaml.ScalarNode, path: Loc) -> None:
        if node.tag == BINARY_TAG:
            self.refused.add(path)
            self.problems.append((line(node), f"{where(path)}: binary values (!!binary) are not accepted; write text"))
        elif node.tag == STR_TAG:
            free = _free_text(path)
            bad = control_character(node.value, free_text=free)
            if bad:
                self.refused.add(path)
                self.problems.append((
                    line(node),
                    f"{where(path)}: contains a {bad}; remove it (values end up in unit files and command "
                    "lines, so control characters are refused)",
                ))


def _free_text(path: Loc) -> bool:
    """A document's own ``description``/``notes`` (or a preset config's), not a key of that name in env or args."""
    return (len(path) == 1 and path[0] in TEXT_KEYS) or (len(path) == 3 and path[0] == "configs" and path[2] == "notes")


def where(loc: Loc) -> str:
    """``health.path``, ``command[2]``: a key path as the user reads it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"
