"""Values that end up in a systemd unit or a command line are checked where they enter: the spec.

No control character in any string of any document (a newline in ``cwd`` would add directives to
the rendered unit, e.g. ``ExecStartPre=``), and paths on the pod are absolute (or ``~/``) and
normalised. Each problem names the line of the field (issue 6, item 10).
"""

from __future__ import annotations

import pytest

from ._helpers import loaded, problems_of

# Every string field of a valid repo, one per line, so a field is found by its line.
POD = """kind: Pod
name: p
host: sim
mode: m
description: the box
state_dir: /srv/gpumod
python: python3
binaries: {vllm: /opt/vllm}
known_hosts: /k
identity_file: /i
env: {A: a}
gpus: [{name: G, memory_mb: 10000}]
"""
MODE = """kind: Mode
name: m
description: the mode
services: [s]
"""
SERVICE = """kind: Service
name: s
driver: command
command: [python3, -m, http.server]
args: {flag: value}
env: {B: b}
cwd: /srv/app
model: org/model
model_path: /models/x.gguf
role: chat
health: {path: /health}
description: the service
port: 8000
vram_mb: 10
"""
FILES = {"pod.yaml": POD, "mode.yaml": MODE, "svc.yaml": SERVICE}


def hostile(file: str, old: str, new: str) -> dict[str, str]:
    files = dict(FILES)
    assert old in files[file]
    files[file] = files[file].replace(old, new, 1)
    return files


def test_the_base_repo_is_valid(repo) -> None:
    loaded(repo(**FILES))


# (file, text to replace, with, line, key path)
CASES = [
    ("pod.yaml", "name: p", 'name: "p\\nx"', 2, "name"),
    ("pod.yaml", "host: sim", 'host: "sim\\n"', 3, "host"),
    ("pod.yaml", "state_dir: /srv/gpumod", 'state_dir: "/srv/x\\nExecStartPre=/bin/sh"', 6, "state_dir"),
    ("pod.yaml", "python: python3", 'python: "python3\\r"', 7, "python"),
    ("pod.yaml", "{vllm: /opt/vllm}", '{vllm: "/opt/vllm\\0"}', 8, "binaries.vllm"),
    ("pod.yaml", "known_hosts: /k", 'known_hosts: "/k\\e"', 9, "known_hosts"),
    ("pod.yaml", "{A: a}", '{A: "a\\nB=b"}', 11, "env.A"),
    ("pod.yaml", "{name: G,", '{name: "G\\t1",', 12, "gpus[0].name"),
    ("pod.yaml", "description: the box", 'description: "box\\e[31m"', 5, "description"),
    ("mode.yaml", "[s]", '["s\\n"]', 4, "services[0]"),
    ("svc.yaml", "[python3, -m, http.server]", '[python3, "-m\\n", http.server]', 4, "command[1]"),
    ("svc.yaml", "{flag: value}", '{flag: "value\\x7f"}', 5, "args.flag"),
    ("svc.yaml", "{B: b}", '{B: "b\\u0085"}', 6, "env.B"),
    ("svc.yaml", "cwd: /srv/app", 'cwd: "/srv/app\\nExecStartPre=/bin/touch /tmp/pwned"', 7, "cwd"),
    ("svc.yaml", "model: org/model", 'model: "org/model\\n"', 8, "model"),
    ("svc.yaml", "model_path: /models/x.gguf", 'model_path: "/models/x.gguf\\n"', 9, "model_path"),
    ("svc.yaml", "role: chat", 'role: "chat\\b"', 10, "role"),
    ("svc.yaml", "{path: /health}", '{path: "/health\\n"}', 11, "health.path"),
    ("svc.yaml", "description: the service", 'description: "a\\x00b"', 12, "description"),
]


@pytest.mark.parametrize(("file", "old", "new", "line", "where"), CASES, ids=[c[4] for c in CASES])
def test_a_control_character_in_any_field_is_refused_at_its_line(repo, file, old, new, line, where) -> None:
    found = problems_of(repo(**hostile(file, old, new)))
    assert found == [
        f"specs/{file}:{line}: {where}: contains a {found[0].split('contains a ')[1].split(';')[0]}; remove it "
        "(values end up in unit files and command lines, so control characters are refused)"
    ], found


def test_a_control_character_in_a_key_is_refused_at_its_line(repo) -> None:
    found = problems_of(repo(**hostile("svc.yaml", "{flag: value}", '{"fl\\nag": value}')))
    assert found == ["specs/svc.yaml:5: args: a key contains a newline (U+000A); remove it"]


def test_a_description_may_span_lines(repo) -> None:
    specs = loaded(repo(**hostile("svc.yaml", "description: the service", "description: |\n  two\n  lines\n")))
    assert specs.services[0].description == "two\nlines\n"


def test_only_a_documents_own_description_may_span_lines(repo) -> None:
    found = problems_of(repo(**hostile("svc.yaml", "{B: b}", '{description: "a\\nb"}')))
    assert found == [
        "specs/svc.yaml:6: env.description: contains a newline (U+000A); remove it "
        "(values end up in unit files and command lines, so control characters are refused)"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("srv/app", "'srv/app' is not an absolute path; write /full/path or ~/path (a path on the pod)"),
        ("~bob/app", "'~bob/app' is not an absolute path; write /full/path or ~/path (a path on the pod)"),
        ("/srv/../etc", "path '/srv/../etc' is not normalised (no '.', '..' or '//'); write it without '..'"),
        ("/srv//app", "path '/srv//app' is not normalised (no '.', '..' or '//'); write '/srv/app'"),
        ("~/./app", "path '~/./app' is not normalised (no '.', '..' or '//'); write '~/app'"),
    ],
)
def test_paths_on_the_pod_are_absolute_and_normalised(repo, value: str, message: str) -> None:
    found = problems_of(repo(**hostile("svc.yaml", "cwd: /srv/app", f"cwd: {value}")))
    assert found == [f"specs/svc.yaml:7: cwd: {message}"]
    found = problems_of(repo(**hostile("pod.yaml", "state_dir: /srv/gpumod", f"state_dir: {value}")))
    assert found == [f"specs/pod.yaml:6: state_dir: {message}"]
    found = problems_of(repo(**hostile("pod.yaml", "{vllm: /opt/vllm}", f"{{vllm: {value}}}")))
    assert found == [f"specs/pod.yaml:8: binaries.vllm: {message}"]
    found = problems_of(repo(**hostile("pod.yaml", "python: python3", f"python: {value}")))
    assert found == [f"specs/pod.yaml:7: python: {message}"]


@pytest.mark.parametrize("value", ["~", "~/apps/asr", "/srv/app/", "/"])
def test_home_relative_and_absolute_paths_are_fine(repo, value: str) -> None:
    loaded(repo(**hostile("svc.yaml", "cwd: /srv/app", f"cwd: {value}")))
    loaded(repo(**hostile("pod.yaml", "state_dir: /srv/gpumod", f"state_dir: {value}")))


def test_a_program_on_the_path_is_a_bare_name(repo) -> None:
    specs = loaded(repo(**hostile("pod.yaml", "{vllm: /opt/vllm}", "{vllm: vllm, llama-server: ~/bin/llama-server}")))
    assert specs.pods[0].binaries == {"vllm": "vllm", "llama-server": "~/bin/llama-server"}
