"""Hostile or broken YAML: every case is a problem at its line, never a traceback or a runaway.

Alias bombs and recursive aliases are refused before anything is built (``gpumod.spec.nodes``);
unreadable characters, absurd nesting and unbuildable values become ``path:line`` problems with
both parsers (libyaml and pure Python); merge keys (``<<``) are legal and may be overridden.
"""

from __future__ import annotations

import pytest
import yaml

from gpumod.spec.nodes import MAX_DEPTH
from gpumod.spec.source import parse_yaml

from ._helpers import loaded, problems_of

LOADERS = [pytest.param(yaml.SafeLoader, id="python")]
if hasattr(yaml, "CSafeLoader"):
    LOADERS.append(pytest.param(yaml.CSafeLoader, id="libyaml"))


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.setattr("gpumod.spec.source._Loader", request.param)
    return request.param


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": 9 lists of 9 aliases, ``levels`` deep (9**9 strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "kind: Mode\nname: m\n" + "\n".join(lines) + "\n"


SERVICE = "kind: Service\nname: s\ndriver: command\nport: 8000\nvram_mb: 10\n"


def test_an_alias_bomb_is_refused_without_expanding_it(loader) -> None:
    text = alias_bomb()
    assert len(text) < 700
    docs, problems = parse_yaml(text, "bomb.yaml")
    assert docs == []
    assert [str(p) for p in problems] == [
        "bomb.yaml:1: this document expands to more than 100000 values through its aliases (an alias bomb?); "
        "write the values out instead of nesting aliases"
    ]


def test_a_merge_key_bomb_is_refused_too(loader) -> None:
    # PyYAML's merge copies key/value pairs: 9 merges of 9 merges ... would build 9**8 pairs
    lines = ["b0: &b0 {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1}"]
    for i in range(1, 8):
        lines.append(f"b{i}: &b{i} {{<<: [{', '.join([f'*b{i - 1}'] * 9)}]}}")
    docs, problems = parse_yaml("\n".join(lines) + "\n", "m.yaml")
    assert docs == [] and "alias bomb" in str(problems[0])


def test_aliases_below_the_limit_load_and_keep_their_lines(loader, repo) -> None:
    root = repo(**{"s.yaml": SERVICE + "command: &c [x, y]\nargs: {extra: *c, more: *c}\nhealth: {pat: /}\n"})
    assert problems_of(root) == ["specs/s.yaml:8: unknown key 'pat'; did you mean 'path'?"]
    specs = loaded(repo(**{"s.yaml": SERVICE + "command: &c [x, y]\nargs: {extra: *c}\n"}))
    assert specs.services[0].args == {"extra": ["x", "y"]}


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("command: &c [x, *c]\n", 6),
        ("args: &a\n  k: *a\ncommand: [x]\n", 7),
        ("command: [x]\nhealth: &h {<<: *h}\n", 7),
    ],
    ids=["list-in-itself", "mapping-in-itself", "merge-of-itself"],
)
def test_a_recursive_alias_is_a_problem_not_a_recursion_error(loader, repo, body: str, line: int) -> None:
    root = repo(**{"s.yaml": SERVICE + body})
    found = problems_of(root)
    assert len(found) == 1 and found[0].startswith(f"specs/s.yaml:{line}: a recursive alias:"), found


@pytest.mark.parametrize(
    ("raw", "name"),
    [("\x00", "NUL (U+0000)"), ("\x1b", "escape (U+001B)"), ("\x07", "U+0007")],
)
def test_a_control_character_in_the_file_is_a_problem_at_its_line(loader, repo, raw: str, name: str) -> None:
    root = repo(**{"s.yaml": SERVICE + f"command: [x{raw}y]\n"})
    assert problems_of(root) == [
        f"specs/s.yaml:6: invalid YAML: the file holds a {name}, which YAML does not allow; remove it"
    ]


def test_a_control_character_after_multibyte_text_is_on_the_right_line(loader, repo) -> None:
    # libyaml reports a byte offset, PyYAML a character offset
    root = repo(**{"s.yaml": "kind: Mode\nname: m\ndescription: é€€€ ok\n\n\nservices: [a\x00]\n"})
    assert problems_of(root) == [
        "specs/s.yaml:6: invalid YAML: the file holds a NUL (U+0000), which YAML does not allow; remove it"
    ]


def test_absurd_nesting_is_a_problem(loader) -> None:
    docs, problems = parse_yaml("kind: Mode\nname: m\nx: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert docs == [] and len(problems) == 1
    assert "nest" in problems[0].message, problems  # libyaml stops at 1000 levels, PyYAML at its recursion limit


def test_nesting_deeper_than_the_limit_is_refused_before_building(loader) -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    docs, problems = parse_yaml(f"kind: Mode\nname: m\nx: {deep}\n", "deep.yaml")
    assert docs == []
    assert [str(p) for p in problems] == [
        f"deep.yaml:3: values are nested more than {MAX_DEPTH} levels deep; a spec is a few levels deep"
    ]


def test_a_value_yaml_cannot_build_is_a_problem(loader, repo) -> None:
    root = repo(**{"s.yaml": "kind: Mode\nname: m\nwhen: 2024-13-45\n"})
    found = problems_of(root)
    assert len(found) == 1 and found[0].startswith("specs/s.yaml:1: invalid YAML: cannot read a value:"), found


def test_binary_values_are_refused(loader, repo) -> None:
    root = repo(**{"s.yaml": SERVICE + "command: [x]\ncwd: !!binary CgA=\n"})
    assert problems_of(root) == ["specs/s.yaml:7: cwd: binary values (!!binary) are not accepted; write text"]


# --- merge keys (<<) -----------------------------------------------------------------------------

def _svc(name: str, port: int) -> str:
    return f"---\nkind: Service\nname: {name}\ndriver: command\ncommand: [x]\nport: {port}\nvram_mb: 10\nsleep: none\n"


def test_a_merged_key_may_be_overridden(loader, repo) -> None:
    mode = "kind: Mode\nname: m\nservices:\n  - &base {name: one, state: active}\n  - {<<: *base, name: other}\n"
    root = repo(**{"m.yaml": mode + _svc("one", 8000) + _svc("other", 8001)})
    specs = loaded(root)
    assert [(m.name, m.state) for m in specs.modes[0].members()] == [("one", "active"), ("other", "active")]


def test_a_real_duplicate_key_next_to_a_merge_is_still_reported(loader, repo) -> None:
    root = repo(
        **{
            "m.yaml": """
                kind: Mode
                name: m
                services:
                  - &base {name: one}
                  - {<<: *base, name: other, name: third}
                """,
        }
    )
    assert "specs/m.yaml:5: duplicate key 'name' (first at line 5); keep only one" in problems_of(root)


def test_a_mistake_brought_in_by_a_merge_points_at_its_own_line(loader, repo) -> None:
    root = repo(
        **{
            "m.yaml": """
                kind: Mode
                name: m
                x-member: &base
                  stat: sleeping
                services:
                  - {<<: *base, name: one}
                """,
        }
    )
    found = problems_of(root)
    assert (
        "specs/m.yaml:3: unknown key 'x-member'; remove it (allowed here: description, kind, max_awake, name, services)"
        in found
    )
    assert "specs/m.yaml:4: unknown key 'stat'; did you mean 'state'?" in found


# --- documents --------------------------------------------------------------------------------------

def test_a_directory_of_comments_only_is_no_specs(repo) -> None:
    root = repo(**{"a.yaml": "# nothing yet\n", "b.yml": "\n---\n# still nothing\n"})
    assert problems_of(root) == [
        "specs:0: no specs found in specs: its YAML files hold no documents (only comments or nothing); "
        "add documents with kind: Pod, Service and Mode"
    ]


def test_a_file_of_comments_only_is_no_specs(repo) -> None:
    repo(**{"a.yaml": "# nothing yet\n"})
    assert problems_of("specs/a.yaml") == [
        "specs/a.yaml:0: no specs found in specs/a.yaml: it holds no documents (only comments or nothing); "
        "add documents with kind: Pod, Service and Mode"
    ]
