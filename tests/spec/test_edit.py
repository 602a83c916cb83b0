"""Spec edits in place (gpumod.spec.edit): only the lines that must change do, comments and layout stay,
anything unsafe or invalid is refused with the files untouched, and --commit makes exactly one commit."""

from __future__ import annotations

import difflib
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumod.errors import GpumodError
from gpumod.gitcommit import NotAGitRepoError, NothingToCommitError, commit, parse_porcelain_z, uncommitted
from gpumod.spec import load_specs, yamltext
from gpumod.spec.edit import (
    EditRejectedError,
    SpecEditError,
    UnknownNameError,
    UnsafeEditError,
    add_service,
    add_to_mode,
    remove_service_from_mode,
    set_pod_mode,
)

ROOT = Path(__file__).resolve().parents[2]
REPOS = ["specs", "examples/h100-pair", "examples/rag-timeshare", "examples/ssh-fleet"]
HOSTILE = ["rag\nmode: x", "$(touch /tmp/pwned)", "a'b", 'a"b', "a\x00b", "Rag", "", "-rf", "a b", "x" * 64, "a: b"]


def copy_repo(src: str, tmp_path: Path) -> Path:
    dst = tmp_path / Path(src).name
    shutil.copytree(ROOT / src, dst)
    return dst


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def changed_lines(before: bytes, after: bytes) -> list[tuple[str, list[str], list[str]]]:
    old, new = before.decode().splitlines(), after.decode().splitlines()
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return [(tag, old[i1:i2], new[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def svc(name: str, port: int, **fields: object) -> dict[str, object]:
    return {"name": name, "driver": "command", "port": port, "vram_mb": 100, "command": ["x"], **fields}


def write(root: Path, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return root


POD = """
# my pod
kind: Pod
name: box
host: sim
mode: a            # the default
gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]
"""
SERVICES = """
kind: Service
name: s1
driver: command
port: 9001
vram_mb: 100
command: [sleep, "100"]
---
kind: Service
name: s2
driver: command
port: 9002
vram_mb: 100
command: [sleep, "100"]
depends_on: [s1]
---
kind: Service
name: s3
driver: vllm
model: org/model
port: 9003
vram_mb: 100
sleep: l1
"""
MODES = """
kind: Mode
name: a
services: [s1, s2]   # flow
---
kind: Mode
name: b
services:
  - s1               # first
  - s2
  - {name: s3, state: standby}
# trailing comment of b
---
kind: Mode
name: c
description: nothing yet
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write(tmp_path / "specs", **{"pod.yaml": POD, "services.yaml": SERVICES, "modes.yaml": MODES})


# --- set_pod_mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("src", REPOS)
def test_switching_every_pod_to_every_mode_changes_exactly_the_mode_line(src: str, tmp_path: Path) -> None:
    root = copy_repo(src, tmp_path)
    original = snapshot(root)
    specs = load_specs(root)
    for pod in specs.pods:
        path, line = specs.where("Pod", pod.name, "mode")
        rel = str(Path(path).resolve().relative_to(root.resolve()))
        for mode in specs.modes:
            if mode.name == pod.mode:
                continue
            edit = set_pod_mode(root, pod.name, mode.name)
            after = snapshot(root)
            diff = changed_lines(original[rel], after[rel])
            assert diff == [("replace", [f"mode: {pod.mode}"], [f"mode: {mode.name}"])], diff
            assert {k: v for k, v in after.items() if k != rel} == {k: v for k, v in original.items() if k != rel}
            hunks = [(h.line, h.old, h.new) for h in edit.hunks]
            assert hunks == [(line, (f"mode: {pod.mode}",), (f"mode: {mode.name}",))]
            assert edit.previous_mode == pod.mode and edit.mode == mode.name and edit.changed
            assert load_specs(root).pod(pod.name).mode == mode.name  # type: ignore[union-attr]
            set_pod_mode(root, pod.name, pod.mode)
            assert snapshot(root) == original, "switching back restores the very bytes"


def test_switch_keeps_comments_and_a_trailing_comment_on_the_mode_line(small: Path) -> None:
    before = (small / "pod.yaml").read_bytes()
    set_pod_mode(small, "box", "b")
    after = (small / "pod.yaml").read_bytes()
    assert changed_lines(before, after) == [
        ("replace", ["mode: a            # the default"], ["mode: b            # the default"])
    ]


def test_switch_to_the_current_mode_writes_nothing(small: Path) -> None:
    before = snapshot(small)
    edit = set_pod_mode(small, None, "a")
    assert not edit.changed and edit.paths == () and snapshot(small) == before


@pytest.mark.parametrize(
    ("written", "expected"),
    [("'a'", "'b'"), ('"a"', '"b"'), ("a", "b")],
)
def test_switch_keeps_the_quoting_style(small: Path, written: str, expected: str) -> None:
    pod = small / "pod.yaml"
    pod.write_text(pod.read_text().replace("mode: a ", f"mode: {written} "))
    before = pod.read_bytes()
    set_pod_mode(small, "box", "b")
    diff = changed_lines(before, pod.read_bytes())
    comment = "            # the default"
    assert diff == [("replace", [f"mode: {written}{comment}"], [f"mode: {expected}{comment}"])]


def test_a_mode_name_that_would_read_as_a_number_is_quoted(small: Path) -> None:
    modes = small / "modes.yaml"
    modes.write_text(modes.read_text() + "---\nkind: Mode\nname: '2024'\nservices: []\n")
    set_pod_mode(small, "box", "2024")
    assert "mode: '2024'            # the default" in (small / "pod.yaml").read_text()
    assert load_specs(small).pod("box").mode == "2024"  # type: ignore[union-attr]


def test_switch_a_pod_written_in_flow_style(tmp_path: Path) -> None:
    root = write(
        tmp_path / "specs",
        **{
            "all.yaml": """
            {kind: Pod, name: box, host: sim, mode: a, gpus: [{name: RTX, memory_mb: 1000}]}  # one line
            ---
            {kind: Mode, name: a, services: []}
            ---
            {kind: Mode, name: b}
            """
        },
    )
    before = (root / "all.yaml").read_bytes()
    set_pod_mode(root, "box", "b")
    assert changed_lines(before, (root / "all.yaml").read_bytes()) == [
        (
            "replace",
            ["{kind: Pod, name: box, host: sim, mode: a, gpus: [{name: RTX, memory_mb: 1000}]}  # one line"],
            ["{kind: Pod, name: box, host: sim, mode: b, gpus: [{name: RTX, memory_mb: 1000}]}  # one line"],
        )
    ]


def test_crlf_files_stay_crlf(small: Path) -> None:
    for path in small.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    set_pod_mode(small, "box", "b")
    add_service(small, "box", svc("s4", 9004))
    remove_service_from_mode(small, "box", "s3")
    for path in small.iterdir():
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), path.name
    text = (small / "modes.yaml").read_bytes().decode()
    assert "services:\r\n  - s1               # first\r\n  - s2\r\n  - s4\r\n# trailing comment of b\r\n" in text


def test_unknown_mode_is_refused_with_did_you_mean_and_nothing_changes(small: Path) -> None:
    before = snapshot(small)
    with pytest.raises(UnknownNameError, match="mode 'bb' is not defined; did you mean 'b'") as err:
        set_pod_mode(small, "box", "bb")
    assert err.value.hint and snapshot(small) == before
    with pytest.raises(UnknownNameError, match="pod 'bx' is not defined; did you mean 'box'"):
        set_pod_mode(small, "bx", "b")


def test_a_fleet_needs_a_pod_name(tmp_path: Path) -> None:
    root = copy_repo("examples/ssh-fleet", tmp_path)
    with pytest.raises(UnknownNameError, match=r"2 pods \(rented-h100, workstation\); say which one"):
        set_pod_mode(root, None, "idle")


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_before_anything_is_written(small: Path, name: str) -> None:
    before = snapshot(small)
    calls = [
        lambda: set_pod_mode(small, "box", name),
        lambda: set_pod_mode(small, name, "b"),
        lambda: add_to_mode(small, "box", name),
        lambda: remove_service_from_mode(small, "box", name),
        lambda: add_service(small, "box", {"name": name, "driver": "command", "port": 9009, "command": ["x"]}),
    ]
    for call in calls:
        with pytest.raises(SpecEditError, match="(mode|pod|service) .* is not a valid name; use lower-case"):
            call()
    assert snapshot(small) == before


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("mode: &m a", "anchor"),
        ("mode: !!str a", "anchor, alias, tag or escape"),
        ('mode: "\\x61"', "anchor, alias, tag or escape"),
        ("mode: >-\n  a", "multi-line"),
        ("<<: {mode: a}", "merge key"),
    ],
)
def test_a_mode_gpumod_cannot_rewrite_safely_is_refused(small: Path, written: str, why: str) -> None:
    pod = small / "pod.yaml"
    pod.write_text(pod.read_text().replace("mode: a            # the default", written))
    load_specs(small)  # the spec itself is valid
    before = snapshot(small)
    with pytest.raises(UnsafeEditError, match=why) as err:
        set_pod_mode(small, "box", "b")
    assert "pod.yaml:" in str(err.value) and "edit that line by hand" in err.value.hint
    assert snapshot(small) == before


@pytest.mark.parametrize(
    "modes",
    [
        "kind: Mode\nname: a\nservices: [s1, &x s2]\ndescription: *x\n",
        "kind: Mode\nname: a\nservices: &l [s1, s2]\n",
        "kind: Mode\nname: a\ndescription: &x s2\nservices: [s1, *x]\n",
    ],
)
def test_services_list_with_an_anchor_or_alias_is_refused(tmp_path: Path, modes: str) -> None:
    root = write(tmp_path / "specs", **{"pod.yaml": POD, "services.yaml": SERVICES, "modes.yaml": modes})
    load_specs(root)
    before = snapshot(root)
    for call in (lambda: add_to_mode(root, "box", "s3"), lambda: remove_service_from_mode(root, "box", "s1")):
        with pytest.raises(UnsafeEditError, match="anchor or alias"):
            call()
    assert snapshot(root) == before


def test_a_switch_that_makes_the_specs_invalid_is_rolled_back(tmp_path: Path) -> None:
    root = write(
        tmp_path / "specs",
        **{
            "pod.yaml": POD,
            "services.yaml": SERVICES + "---\nkind: Service\nname: big\npreset: gpt-oss-20b\n",
            "modes.yaml": MODES + "---\nkind: Mode\nname: huge\nservices: [big]\n",
        },
    )
    before = snapshot(root)
    with pytest.raises(EditRejectedError, match="mode a -> huge: the specs would not be valid") as err:
        set_pod_mode(root, "box", "huge")
    assert any("preset gpt-oss-20b has no config for 1 x NVIDIA GeForce RTX 4090" in str(p) for p in err.value.problems)
    assert "services.yaml:" in str(err.value)
    assert snapshot(root) == before


def test_an_edit_that_does_not_read_back_is_rolled_back(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = yamltext.replace_scalar
    monkeypatch.setattr(yamltext, "replace_scalar", lambda text, node, new, what: real(text, node, "c", what))
    before = snapshot(small)
    with pytest.raises(EditRejectedError, match="did not read back as asked"):
        set_pod_mode(small, "box", "b")
    assert snapshot(small) == before
    assert not [p for p in small.iterdir() if p.name.startswith(".")], "no temporary file left behind"


# --- services of a mode ----------------------------------------------------------------------------


def test_add_service_appends_a_document_and_a_flow_member(small: Path) -> None:
    before = snapshot(small)
    doc = svc("s4", 9004, command=["sleep", "$(x)", "it's"], description="a\nb")
    edit = add_service(small, "box", doc)
    after = snapshot(small)
    assert changed_lines(before["modes.yaml"], after["modes.yaml"]) == [
        ("replace", ["services: [s1, s2]   # flow"], ["services: [s1, s2, s4]   # flow"])
    ]
    assert after["services.yaml"].startswith(before["services.yaml"])
    added = after["services.yaml"][len(before["services.yaml"]) :].decode()
    assert added.startswith("---\nkind: Service\nname: s4\ndriver: command\n")
    specs = load_specs(small)
    added_spec = specs.service("s4")
    assert added_spec is not None and added_spec.command == ["sleep", "$(x)", "it's"]
    assert added_spec.description == "a\nb"
    assert specs.mode("a").services == ["s1", "s2", "s4"]  # type: ignore[union-attr]
    assert edit.service == "s4" and {p.name for p in edit.paths} == {"modes.yaml", "services.yaml"}
    assert edit.summary == "pod box: add service s4 to mode a"


def test_remove_then_add_round_trips_to_the_same_bytes(small: Path) -> None:
    before = snapshot(small)
    remove_service_from_mode(small, "box", "s2")
    assert "services: [s1]   # flow" in (small / "modes.yaml").read_text()
    add_to_mode(small, "box", "s2")
    assert snapshot(small) == before
    set_pod_mode(small, "box", "b")
    before = snapshot(small)
    edit = remove_service_from_mode(small, "box", "s2")
    assert [(h.line, h.old, h.new) for h in edit.hunks] == [(9, ("  - s2",), ())]
    add_to_mode(small, "box", "s2")
    text = (small / "modes.yaml").read_text()
    assert "  - {name: s3, state: standby}\n  - s2\n# trailing comment of b" in text


def test_add_service_then_remove_leaves_the_mode_as_it_was(small: Path) -> None:
    set_pod_mode(small, "box", "b")
    before = snapshot(small)
    add_service(small, "box", svc("s4", 9004))
    assert "  - {name: s3, state: standby}\n  - s4\n# trailing comment of b" in (small / "modes.yaml").read_text()
    edit = remove_service_from_mode(small, "box", "s4")
    after = snapshot(small)
    assert after["modes.yaml"] == before["modes.yaml"] and [p.name for p in edit.paths] == ["modes.yaml"]
    assert load_specs(small).service("s4") is not None, "the Service document stays"


def test_remove_a_standby_member_written_as_a_mapping(small: Path) -> None:
    set_pod_mode(small, "box", "b")
    before = (small / "modes.yaml").read_bytes()
    remove_service_from_mode(small, "box", "s3")
    assert changed_lines(before, (small / "modes.yaml").read_bytes()) == [
        ("delete", ["  - {name: s3, state: standby}"], [])
    ]


def test_removing_the_last_member_of_a_block_list_leaves_an_empty_list(tmp_path: Path) -> None:
    modes = "kind: Mode\nname: a\nservices:   # one\n  - s1\n"
    root = write(tmp_path / "specs", **{"pod.yaml": POD, "services.yaml": SERVICES, "modes.yaml": modes})
    remove_service_from_mode(root, "box", "s1")
    assert (root / "modes.yaml").read_text() == "kind: Mode\nname: a\nservices: []   # one\n"
    add_to_mode(root, "box", "s1")
    assert (root / "modes.yaml").read_text() == "kind: Mode\nname: a\nservices: [s1]   # one\n"


def test_adding_to_a_mode_without_services_adds_the_key(small: Path) -> None:
    set_pod_mode(small, "box", "c")
    add_to_mode(small, "box", "s1")
    assert (small / "modes.yaml").read_text().endswith("name: c\ndescription: nothing yet\nservices: [s1]\n")
    assert load_specs(small).mode("c").services == ["s1"]  # type: ignore[union-attr]


def test_removing_a_dependency_of_another_member_is_refused_and_rolled_back(small: Path) -> None:
    before = snapshot(small)
    with pytest.raises(EditRejectedError, match="s2 depends on s1, which is not in mode a"):
        remove_service_from_mode(small, "box", "s1")
    assert snapshot(small) == before


def test_member_errors_name_what_to_do(small: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"service 's3' is not in mode a of pod box \(its services: s1, s2\)"):
        remove_service_from_mode(small, "box", "s3")
    with pytest.raises(UnknownNameError, match="service 's22' is not defined; did you mean 's2'"):
        add_to_mode(small, "box", "s22")
    assert not add_to_mode(small, "box", "s1").changed
    with pytest.raises(SpecEditError, match=r"service s1 is already defined at .*services.yaml:1"):
        add_service(small, "box", {"name": "s1", "driver": "command", "port": 9010, "command": ["x"]})


def test_an_invalid_new_service_is_refused_in_the_loaders_words(small: Path) -> None:
    before = snapshot(small)
    with pytest.raises(SpecEditError, match="unknown key 'prot'; did you mean 'port'"):
        add_service(small, "box", {"name": "s9", "driver": "command", "prot": 9, "command": ["x"]})
    with pytest.raises(SpecEditError, match="kind: Service"):
        add_service(small, "box", {"kind": "Mode", "name": "s9"})
    with pytest.raises(EditRejectedError, match="both use port 9001"):
        add_service(small, "box", {"name": "s9", "driver": "command", "port": 9001, "command": ["x"]})
    assert snapshot(small) == before


def test_add_service_into_a_named_file(small: Path) -> None:
    add_service(small, "box", svc("s4", 9004), file="new.yaml")
    assert (small / "new.yaml").read_text() == (
        "kind: Service\nname: s4\ndriver: command\nport: 9004\nvram_mb: 100\ncommand:\n- x\n"
    )
    before = snapshot(small)
    for bad in ("../outside.yaml", "notes.txt", ".hidden.yaml", "missing/new.yaml"):
        with pytest.raises(SpecEditError):
            add_service(small, "box", svc("s5", 9005), file=bad)
    assert snapshot(small) == before and not (small.parent / "outside.yaml").exists()


def test_a_shared_mode_names_the_other_pods(tmp_path: Path) -> None:
    root = copy_repo("examples/ssh-fleet", tmp_path)
    set_pod_mode(root, "rented-h100", "code")
    edit = remove_service_from_mode(root, "workstation", "devstral")
    assert edit.shared_with == ("rented-h100",)


def test_edit_errors_are_gpumod_errors_with_a_hint(small: Path) -> None:
    with pytest.raises(GpumodError) as err:
        set_pod_mode(small, "box", "zzz")
    assert err.value.hint and "\n" not in err.value.message


# --- git ---------------------------------------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "specs", repo / "specs")
    (repo / "README").write_text("notes\n")
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def test_commit_makes_one_commit_touching_only_the_mode_line(git_repo: Path) -> None:
    (git_repo / "README").write_text("notes, staged but not part of the switch\n")
    git(git_repo, "add", "README")
    head = git(git_repo, "rev-parse", "HEAD").strip()
    edit = set_pod_mode(git_repo / "specs", None, "rag")
    new = commit(git_repo / "specs", edit.paths, edit.summary)
    assert git(git_repo, "rev-list", f"{head}..HEAD").split() == [new]
    assert git(git_repo, "log", "-1", "--format=%s").strip() == "pod sim-box: mode code -> rag"
    diff = git(git_repo, "show", "--format=", "--unified=0", new)
    changes = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changes == ["-mode: code", "+mode: rag"]
    assert git(git_repo, "show", "--format=", "--name-only", new).split() == ["specs/pod.yaml"]
    assert git(git_repo, "diff", "--cached", "--name-only").split() == ["README"], "the unrelated change stays staged"


def test_commit_of_a_new_service_file(git_repo: Path) -> None:
    edit = add_service(git_repo / "specs", None, svc("x", 9100), file="x.yaml")
    new = commit(git_repo / "specs", edit.paths, edit.summary)
    touched = git(git_repo, "show", "--format=", "--name-only", new).split()
    assert sorted(touched) == ["specs/modes.yaml", "specs/x.yaml"]
    assert git(git_repo, "status", "--porcelain") == ""


def test_commit_refuses_outside_git_and_when_nothing_changed(git_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(NothingToCommitError, match="nothing to commit"):
        commit(git_repo / "specs", [git_repo / "specs/pod.yaml"], "noop")
    plain = copy_repo("specs", tmp_path / "plain")
    edit = set_pod_mode(plain, None, "rag")
    with pytest.raises(NotAGitRepoError, match="not inside a git work tree"):
        commit(plain, edit.paths, edit.summary)


def test_a_single_file_spec_with_a_bom_crlf_and_flow_documents(tmp_path: Path) -> None:
    spec = tmp_path / "one.yaml"
    original = (
        "\ufeff# one file\r\n---\r\nkind: Pod\r\nname: p\r\nhost: sim\r\nmode:\r\n  a\r\n"
        "gpus: [{name: X, memory_mb: 1000}]\r\n--- {kind: Mode, name: a}\r\n---\r\nkind: Mode\r\nname: b\r\n"
        "services: []"
    ).encode()
    spec.write_bytes(original)
    edit = set_pod_mode(spec, None, "b")
    assert [(h.line, h.old, h.new) for h in edit.hunks] == [(7, ("  a",), ("  b",))]
    add_service(spec, None, svc("s", 9000))
    set_pod_mode(spec, None, "a")
    add_to_mode(spec, None, "s")
    text = spec.read_bytes().decode()
    assert text.startswith("\ufeff# one file\r\n") and "--- {kind: Mode, name: a, services: [s]}\r\n" in text
    assert "services: [s]\r\n---\r\nkind: Service\r\nname: s\r\n" in text
    assert text.count("\n") == text.count("\r\n")
    remove_service_from_mode(spec, None, "s")
    assert "--- {kind: Mode, name: a, services: []}\r\n" in spec.read_bytes().decode()


def comments_of(root: Path) -> list[str]:
    return sorted(line[line.index("#") :] for p in root.iterdir() for line in p.read_text().splitlines() if "#" in line)


OPS = st.lists(
    st.tuples(st.sampled_from(["mode", "add", "remove"]), st.sampled_from(["a", "b", "c", "s1", "s2", "s3"])),
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, crlf=st.booleans())
def test_any_sequence_of_edits_keeps_comments_and_reads_back(ops: list[tuple[str, str]], crlf: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write(Path(tmp) / "specs", **{"pod.yaml": POD, "services.yaml": SERVICES, "modes.yaml": MODES})
        if crlf:
            for path in root.iterdir():
                path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        comments = comments_of(root)
        mode = "a"
        members = {m.name: [x.name for x in m.members()] for m in load_specs(root).modes}
        for op, name in ops:
            before = snapshot(root)
            try:
                if op == "mode":
                    edit = set_pod_mode(root, "box", name)
                elif op == "add":
                    edit = add_to_mode(root, "box", name)
                else:
                    edit = remove_service_from_mode(root, "box", name)
            except SpecEditError:
                assert snapshot(root) == before
                continue
            if op == "mode":
                mode = name
            elif op == "add" and edit.changed:
                members[mode].append(name)
            elif op == "remove":
                members[mode].remove(name)
            specs = load_specs(root)
            assert specs.pod("box").mode == mode  # type: ignore[union-attr]
            assert {m.name: [x.name for x in m.members()] for m in specs.modes} == members
            assert sum(max(len(h.old), len(h.new)) for h in edit.hunks) <= 2
            after = comments_of(root)
            assert after == comments or (op == "remove" and set(after) < set(comments))
            comments = after
            data = b"".join(p.read_bytes() for p in root.iterdir())
            assert (data.count(b"\r\n") == data.count(b"\n")) if crlf else b"\r" not in data


def test_uncommitted_lists_what_a_commit_would_carry_along(git_repo: Path) -> None:
    assert uncommitted(git_repo / "specs") == ()
    (git_repo / "README").write_text("outside the specs\n")
    (git_repo / "specs/pod.yaml").write_text((git_repo / "specs/pod.yaml").read_text() + "# my own note\n")
    (git_repo / "specs/new.yaml").write_text("# draft\n")
    git(git_repo, "mv", "specs/modes.yaml", "specs/modes2.yaml")
    assert uncommitted(git_repo / "specs") == ("specs/modes2.yaml", "specs/new.yaml", "specs/pod.yaml")


def test_parse_porcelain_z_skips_the_source_of_a_rename() -> None:
    text = "R  new name.yaml\0old.yaml\0 M a.yaml\0?? b c.yaml\0"
    assert parse_porcelain_z(text) == ["new name.yaml", "a.yaml", "b c.yaml"]
