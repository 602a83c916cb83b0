"""Text-level edits of a YAML file at the places its nodes came from: comments and layout survive.

``gpumod.spec.edit`` changes the specs a user keeps in git. Rewriting a file through a YAML dumper
would drop its comments and reorder it, so these functions change the characters of one node and
nothing else: a scalar, one item of a flow list (``[a, b]``) or one ``- item`` line of a block list.
PyYAML's pure-Python composer gives every node the character offsets it came from; a node written
in a way these edits cannot reproduce exactly (an anchor, an alias, a tag, escapes, a block or
multi-line scalar, a compact nested list) is refused with ``UnsafeEditError``, never guessed at.

Every function is pure: text in, text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from gpumod.errors import GpumodError

BREAKS = "\r\n\x85\u2028\u2029"  # what PyYAML counts as a line break
STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_DASH = re.compile(r"[ ]*-[ ]+")


class SpecEditError(GpumodError):
    """A spec edit was refused; no file was changed."""

    hint = "nothing was changed; fix the request, or edit the spec file by hand and run `gpumod validate`"


class UnsafeEditError(SpecEditError):
    """The YAML at the place to edit is written in a way gpumod cannot change without guessing."""

    hint = (
        "nothing was changed; edit that line by hand (gpumod does not rewrite YAML anchors, aliases, "
        "tags, merge keys or multi-line values), or write it plainly, e.g. `mode: rag` or `services: [a, b]`"
    )


@dataclass
class Parsed:
    """The documents of one YAML text, and the ids of the nodes that carry an anchor (or are aliased)."""

    documents: list[yaml.Node]
    shared: set[int]


class _Composer(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types: its classes are Any
    """PyYAML's pure-Python composer (marks hold character offsets), noting anchored nodes."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.shared: set[int] = set()

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            self.shared.add(id(node))
        return node


def parse(text: str) -> Parsed:
    """Every non-empty document of ``text`` as a node tree (raises yaml.YAMLError)."""
    loader = _Composer(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(node)
        return Parsed(docs, loader.shared)
    finally:
        loader.dispose()


def eol_of(text: str) -> str:
    """The line break a file uses (CRLF files stay CRLF)."""
    return "\r\n" if "\r\n" in text else "\n"


def line_bounds(text: str, index: int) -> tuple[int, int, int]:
    """``(start, end of content, end after the line break)`` of the line holding ``index``."""
    start = max(text.rfind(c, 0, index) for c in BREAKS) + 1
    end = min((i for i in (text.find(c, index) for c in BREAKS) if i >= 0), default=len(text))
    after = end + 2 if text.startswith("\r\n", end) else min(end + 1, len(text))
    return start, end, after


def last_index(node: yaml.Node) -> int:
    """Where the text of a node ends (block collections end at their last scalar, not at the next token)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return int(node.end_mark.index)
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max((last_index(c) for c in children), default=int(node.end_mark.index))


def value_of(mapping: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The ``(key node, value node)`` of ``key`` written in this mapping itself (not merged in)."""
    if not isinstance(mapping, yaml.MappingNode):
        return None
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key and key_node.tag == STR_TAG:
            return key_node, value_node
    return None


def has_merge_key(mapping: yaml.Node) -> bool:
    return isinstance(mapping, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge" for k, _ in mapping.value
    )


def render_name(value: str, style: str | None = None) -> str:
    """A name as a YAML scalar in ``style`` (plain unless plain would read as a number, bool or null)."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == STR_TAG:
        return value
    return "'" + value.replace("'", "''") + "'"


def replace_scalar(text: str, node: yaml.Node, new: str, what: str) -> str:
    """``text`` with the one-line scalar ``node`` set to ``new``, in the same quoting style."""
    if not isinstance(node, yaml.ScalarNode):
        raise UnsafeEditError(f"{what} is not a plain value (it is a list or a mapping); gpumod will not rewrite it")
    start, end = node.start_mark.index, node.end_mark.index
    if node.style in ("|", ">") or node.start_mark.line != node.end_mark.line:
        raise UnsafeEditError(f"{what} is a multi-line value; gpumod only edits a value written on one line")
    if text[start:end] != render_name(node.value, node.style):
        raise UnsafeEditError(
            f"{what} is written as {text[start:end]!r} (an anchor, alias, tag or escape); gpumod will not rewrite it"
        )
    return text[:start] + render_name(new, node.style) + text[end:]


def _item_prefix(text: str, item: yaml.Node, what: str) -> str:
    """The ``"  - "`` before a block list item (refused when the item shares its line with more)."""
    start, _, _ = line_bounds(text, item.start_mark.index)
    prefix = text[start : item.start_mark.index]
    if not _DASH.fullmatch(prefix):
        raise UnsafeEditError(f"{what} is a block list whose items are not one '- item' per line; edit it by hand")
    return prefix


def append_item(text: str, seq: yaml.Node, item: str, what: str) -> str:
    """``text`` with ``item`` (already rendered) appended to the list ``seq``."""
    if not isinstance(seq, yaml.SequenceNode):
        raise UnsafeEditError(f"{what} is not a list; write it as `services: [a, b]` or one `- name` per line")
    if seq.flow_style:
        if seq.value:
            at = last_index(seq.value[-1])
            return text[:at] + ", " + item + text[at:]
        at = seq.end_mark.index - 1
        if text[at : at + 1] != "]":
            raise UnsafeEditError(f"{what}: cannot find the closing ']' of the list")
        return text[:at] + item + text[at:]
    last = seq.value[-1]
    prefix = _item_prefix(text, last, what)
    _, end, after = line_bounds(text, last_index(last) - 1)
    eol = text[end:after] or eol_of(text)
    lead = "" if text[end:after] else eol  # the file ended without a line break
    return text[:after] + lead + prefix + item + (eol if text[end:after] else "") + text[after:]


def remove_item(text: str, key: yaml.Node, seq: yaml.Node, index: int, what: str) -> str:
    """``text`` without item ``index`` of the list ``seq`` (the value of ``key``); an emptied block list is ``[]``."""
    if not isinstance(seq, yaml.SequenceNode):
        raise UnsafeEditError(f"{what} is not a list; edit it by hand")
    items = seq.value
    item = items[index]
    if seq.flow_style:
        if len(items) == 1:
            start, end = item.start_mark.index, last_index(item)
        elif index == len(items) - 1:
            start, end = last_index(items[index - 1]), last_index(item)
        else:
            start, end = item.start_mark.index, items[index + 1].start_mark.index
        return text[:start] + text[end:]
    _item_prefix(text, item, what)
    start, _, _ = line_bounds(text, item.start_mark.index)
    stop = last_index(item)
    _, end, after = line_bounds(text, stop - 1)
    rest = text[stop:end].strip()
    if rest and not rest.startswith("#"):
        raise UnsafeEditError(f"{what}: the item shares its line with more YAML; edit it by hand")
    text = text[:start] + text[after:]
    if len(items) == 1:  # `services:` with nothing under it would read as null: make it `services: []`
        key_end = key.end_mark.index
        _, key_line_end, _ = line_bounds(text, key_end)
        tail = text[key_end:key_line_end]
        match = re.fullmatch(r"([ ]*:)([ ]*(#.*)?)", tail)
        if match is None:
            raise UnsafeEditError(f"{what}: cannot find the ':' after the key; edit it by hand")
        at = key_end + len(match.group(1))
        text = text[:at] + " []" + text[at:]
    return text


def add_key(text: str, mapping: yaml.Node, entry: str, what: str) -> str:
    """``text`` with ``entry`` (e.g. ``services: [a]``) added as the last key of a mapping."""
    if not isinstance(mapping, yaml.MappingNode) or not mapping.value:
        raise UnsafeEditError(f"{what}: the document is not a mapping with keys; edit it by hand")
    if mapping.flow_style:  # {kind: Mode, name: a} -> {kind: Mode, name: a, services: [x]}
        at = last_index(mapping.value[-1][1])
        return text[:at] + ", " + entry + text[at:]
    column: int = mapping.value[0][0].start_mark.column
    _, end, after = line_bounds(text, last_index(mapping) - 1)
    eol = text[end:after] or eol_of(text)
    lead = "" if text[end:after] else eol
    return text[:after] + lead + " " * column + entry + (eol if text[end:after] else "") + text[after:]


def append_document(text: str, rendered: str) -> str:
    """``text`` with one more YAML document (``rendered``, with '\\n' breaks) after a ``---`` line."""
    eol = eol_of(text) if text else "\n"
    body = rendered.replace("\n", eol)
    if not text.strip():
        return text + body
    if not text.endswith(tuple(BREAKS)):
        text += eol
    last_line = text.rstrip(BREAKS + " \t").rsplit("\n", 1)[-1].strip()
    if last_line == "---":  # the file already ends with a document start
        return text + body
    return text + "---" + eol + body


def member_name(node: yaml.Node) -> str | None:
    """The service a mode member names: ``- chat`` or ``- {name: chat, state: standby}``."""
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    found = value_of(node, "name")
    return str(found[1].value) if found and isinstance(found[1], yaml.ScalarNode) else None


def refuse_shared(root: yaml.Node, node: yaml.Node, shared: set[int], what: str) -> None:
    """Refuse to edit a node that holds, or sits inside, an anchor or alias: its text lies elsewhere or is reused."""
    if any(id(n) in shared for n in _path_to(root, node, set())[1:]) or _holds_shared(node, shared, set()):
        raise UnsafeEditError(f"{what} use a YAML anchor or alias (&name / *name); gpumod will not rewrite them")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _path_to(node: yaml.Node, target: yaml.Node, seen: set[int]) -> list[yaml.Node]:
    """The nodes from ``node`` down to ``target`` (both included); empty if it is not below."""
    if node is target:
        return [node]
    if id(node) in seen:
        return []
    seen.add(id(node))
    for child in _children(node):
        below = _path_to(child, target, seen)
        if below:
            return [node, *below]
    return []


def _holds_shared(node: yaml.Node, shared: set[int], seen: set[int]) -> bool:
    if id(node) in seen:
        return True  # reached twice: an alias
    seen.add(id(node))
    return any(id(c) in shared or _holds_shared(c, shared, seen) for c in _children(node))
