"""load_specs: every document below a directory, every problem with its exact path:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.errors import SpecError
from gpumod.spec import SpecSet, load_specs
from gpumod.spec.models import ModeMember

from ._helpers import FIXTURES, loaded, problems_of

# libyaml and PyYAML word syntax errors differently: only the start of that one is fixed.
BROKEN = "invalid/broken.yaml:4: invalid YAML: "
INVALID_EXPECTED = [
    "invalid/more.yaml:1: duplicate Mode 'code' (also at invalid/more.yaml:21); rename or remove one",
    "invalid/more.yaml:6: service chat cannot sleep; set sleep: l1|l2|router on it or make it active in mode code",
    "invalid/more.yaml:7: service b depends on a, which is not in mode code; add a to the mode or drop it from "
    "depends_on",
    "invalid/more.yaml:7: services embed and b of mode code both use port 7072; give one of them another port",
    "invalid/more.yaml:8: service 'ghost2' is not defined; define a Service named 'ghost2' or use one of: "
    "a, b, chat, coder, dupkey, embed, pinned",
    "invalid/more.yaml:12: service coder depends on embed, which is not in mode lonely; "
    "add embed to the mode or drop it from depends_on",
    "invalid/more.yaml:14: service pinned (driver docker) has no image; set image: <repository:tag>",
    "invalid/more.yaml:19: service pinned pins GPU 3, but pod small has 1 GPU (index 0); pin GPUs the pod has",
    "invalid/more.yaml:21: duplicate Mode 'code' (also at invalid/more.yaml:1); rename or remove one",
    "invalid/more.yaml:24: unknown kind 'Servce'; did you mean 'Service'?",
    "invalid/more.yaml:27: a spec document is a mapping with kind and name, not a list",
    "invalid/more.yaml:31: name: 'Bad_Name' is not a valid name; use lower-case letters, digits, '.', '_' and '-' "
    "(at most 63 characters, starting and ending with a letter or digit)",
    "invalid/more.yaml:32: unknown key 'stat'; did you mean 'state'?",
    "invalid/more.yaml:33: max_awake: input should be a valid integer, unable to parse string as an integer, got "
    "'lots'",
    "invalid/pods.yaml:4: mode 'cod' is not defined; did you mean 'code'?",
    "invalid/pods.yaml:9: pod nogpu is simulated (host: sim) but declares no gpus; "
    "add gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]",
    "invalid/pods.yaml:14: host 'ftp://example.org' is not one of: local, sim, ssh://user@host[:port] or "
    "'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'",
    "invalid/pods.yaml:21: pod remote simulates its GPUs over SSH (sim:) but declares no gpus; add gpus: [...]",
    "invalid/pods.yaml:26: pods nogpu and typo both run on this machine and both use port 7071 (chat in pod nogpu, "
    "chat in pod typo); give one of the services another port, or run one pod elsewhere",
    "invalid/pods.yaml:26: pods nogpu and typo both run on this machine and both use port 7072 (embed in pod nogpu, "
    "embed in pod typo); give one of the services another port, or run one pod elsewhere",
    "invalid/pods.yaml:27: unknown key 'reserve'; did you mean 'reserve_mb'?",
    "invalid/services.yaml:7: unknown preset 'devstral-smal-2'; did you mean 'devstral-small-2'?",
    "invalid/services.yaml:8: service coder depends on 'ghost', which is not defined; define a Service named 'ghost' "
    "or use one of: a, b, chat, coder, dupkey, embed, pinned",
    "invalid/services.yaml:10: service chat (driver vllm) has no model; set model: <Hugging Face id>",
    "invalid/services.yaml:17: service a (driver command) has no command; set command: [argv, ...]",
    "invalid/services.yaml:22: depends_on cycle: a -> b -> a; remove one of these dependencies",
    "invalid/sub/dup.yml:6: duplicate key 'port' (first at line 5); keep only one",
]


def test_invalid_repo_reports_every_problem_at_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    found = problems_of("invalid")
    assert found[0].startswith(BROKEN) and "']'" in found[0] and found[0].endswith("after each key")
    assert found[1:] == INVALID_EXPECTED


def test_valid_repo_loads_sorted_with_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    specs = loaded("valid")
    assert [p.name for p in specs.pods] == ["box", "rented"]
    assert [s.name for s in specs.services] == ["asr", "chat", "embedding-code", "glm-code", "reranker"]
    assert [m.name for m in specs.modes] == ["blank", "code", "rag"]
    assert specs.source("Pod", "rented") == "valid/pods.yaml:10"
    assert specs.source("Service", "chat") == "valid/services/rag.yaml:6"
    assert specs.source("Mode", "rag", "services", 2) == "valid/modes.yaml:11"
    assert specs.source("Service", "glm-code", "depends_on", 0) == "valid/services/code.yaml:8"
    assert specs.mode("rag").members()[1] == ModeMember(name="reranker", state="standby")  # type: ignore[union-attr]
    assert specs.pod("nope") is None and specs.service("chat") is not None


def test_hidden_files_and_folders_are_skipped(repo) -> None:
    root = repo(**{"a.yaml": "kind: Mode\nname: m\n", ".hidden.yaml": "kind: Bogus\n", ".git__x.yaml": "kind: Bogus\n"})
    assert problems_of(root) == []
    assert [m.name for m in loaded(root).modes] == ["m"]


def test_a_single_file_is_accepted(repo) -> None:
    root = repo(
        **{"one.yaml": "kind: Mode\nname: b\n---\nkind: Mode\nname: a\n", "other.yaml": "kind: Mode\nname: c\n"}
    )
    specs = loaded(root / "one.yaml")
    assert [m.name for m in specs.modes] == ["a", "b"] and specs.source("Mode", "a") == "specs/one.yaml:4"


def test_a_single_file_is_cross_checked_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    assert problems_of("valid/modes.yaml")[0] == (
        "valid/modes.yaml:4: service 'embedding-code' is not defined; define a Service named 'embedding-code'"
    )


def test_empty_directory_is_a_problem(repo) -> None:
    root = repo(**{"README.md": "no specs here"})
    assert problems_of(root) == [
        "specs:0: no spec files found under specs; add *.yaml files with kind: Pod, Service and Mode"
    ]


def test_missing_path_is_a_problem(repo) -> None:
    repo()
    assert problems_of("nowhere") == ["nowhere:0: no such file or directory; give the spec directory or a YAML file"]


def test_paths_outside_the_cwd_are_shown_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "m.yaml").write_text("kind: Mode\nname: m\nfoo: 1\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert problems_of(tmp_path / "s") == [f"{tmp_path}/s/m.yaml:3: unknown key 'foo'; remove it (allowed here: "
                                          "description, kind, max_awake, name, services)"]


def test_document_level_mistakes(repo) -> None:
    root = repo(
        **{
            "a.yaml": """
                name: no-kind
                ---
                kind: Mode
                ---
                just a string
                ---
                kind: [Pod]
                name: x
                """,
        }
    )
    assert problems_of(root) == [
        "specs/a.yaml:1: missing key 'kind'; set kind: Pod, Service or Mode",
        "specs/a.yaml:3: missing key 'name'; add it",
        "specs/a.yaml:5: a spec document is a mapping with kind and name, not a str",
        "specs/a.yaml:7: kind must be Pod, Service or Mode, got ['Pod']",
    ]


def test_nested_keys_and_wrong_types_point_at_their_line(repo) -> None:
    root = repo(
        **{
            "svc.yaml": """
                kind: Service
                name: s
                driver: command
                command: [x]
                vram_mb: 10
                port: 80
                health:
                  path: /ready
                  timeout: 5
                gpus: [0, two]
                sleep: deep
                env: {"1BAD": x}
                """,
            "pod.yaml": """
                kind: Pod
                name: p
                mode: m
                gpus:
                  - name: RTX
                    memory: 24
                """,
        }
    )
    assert problems_of(root) == [
        "specs/pod.yaml:3: mode 'm' is not defined; define a Mode named 'm'",  # the pod's valid part is checked too
        "specs/pod.yaml:5: missing key 'memory_mb' in gpus[0]; add it",
        "specs/pod.yaml:6: unknown key 'memory'; did you mean 'memory_mb'?",
        "specs/svc.yaml:9: unknown key 'timeout'; did you mean 'startup_timeout_s'?",
        "specs/svc.yaml:10: gpus[1]: input should be a valid integer, unable to parse string as an integer, got 'two'",
        "specs/svc.yaml:11: sleep: input should be 'none', 'l1', 'l2' or 'router', got 'deep'",
        "specs/svc.yaml:12: env.1BAD: '1BAD' is not a valid variable name; use letters, digits and '_' (no digit "
        "first)",
    ]


def test_union_members_report_the_branch_that_went_deepest(repo) -> None:
    root = repo(
        **{
            "m.yaml": """
                kind: Mode
                name: m
                services:
                  - 42
                  - {name: x, state: asleep}
                """,
        }
    )
    assert problems_of(root) == [
        "specs/m.yaml:4: services[0]: input should be a valid string or input should be a valid dictionary "
        "or instance of ModeMember, got 42",
        "specs/m.yaml:5: services[1].state: input should be 'active', 'sleeping' or 'standby', got 'asleep'",
    ]


def test_invalid_documents_are_not_reported_again_as_undefined(repo) -> None:
    root = repo(
        **{
            "a.yaml": """
                kind: Service
                name: svc
                drivr: vllm
                ---
                kind: Mode
                name: m
                services: [svc]
                """,
        }
    )
    # no "service 'svc' is not defined", and no "has no driver" either: its driver is unknown, not absent
    assert problems_of(root) == [
        "specs/a.yaml:1: cannot tell the VRAM footprint of svc; set vram_mb (or gpu_memory_utilization for vLLM)",
        "specs/a.yaml:1: service svc has no port; set port: <1-65535>",
        "specs/a.yaml:3: unknown key 'drivr'; did you mean 'driver'?",
    ]


def test_the_result_does_not_depend_on_file_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    first = load_specs("valid")
    first_problems = problems_of("invalid")
    monkeypatch.setattr("gpumod.spec.loader._children", lambda folder: sorted(folder.iterdir(), reverse=True))
    second = load_specs("valid")
    assert second == first
    assert [second.source("Service", s.name) for s in second.services] == [
        first.source("Service", s.name) for s in first.services
    ]
    assert problems_of("invalid") == first_problems


def test_document_order_inside_files_does_not_matter(repo) -> None:
    docs = [
        "kind: Mode\nname: m\nservices: [b, a]\n",
        "kind: Service\nname: a\ndriver: command\ncommand: [x]\nport: 1\nvram_mb: 1\n",
        "kind: Service\nname: b\ndriver: command\ncommand: [x]\nport: 2\nvram_mb: 1\n",
        "kind: Pod\nname: p\nhost: sim\nmode: m\ngpus: [{name: G, memory_mb: 100}]\n",
    ]
    one = loaded(repo(**{"x.yaml": "---\n".join(docs)}))
    two = loaded(repo(**{"x.yaml": "---\n".join(reversed(docs))}))
    assert isinstance(one, SpecSet) and one == two


def test_spec_error_is_one_error_with_all_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    with pytest.raises(SpecError) as info:
        load_specs("invalid")
    assert len(info.value.problems) == len(INVALID_EXPECTED) + 1
    assert "problem(s)" in str(info.value)


def test_lines_are_the_same_with_the_pure_python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    monkeypatch.chdir(FIXTURES)
    monkeypatch.setattr("gpumod.spec.source._Loader", yaml.SafeLoader)
    found = problems_of("invalid")
    assert found[0].startswith(BROKEN) and found[1:] == INVALID_EXPECTED
