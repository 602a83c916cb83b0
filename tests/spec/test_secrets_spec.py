"""Secrets in specs: `{from_env: NAME}` / `{from_file: PATH}` env values, their shape, plain-text
secrets refused, and resolution keeping references (never values) in the service and its hash."""

from __future__ import annotations

import pytest

from gpumod.spec import PresetCatalog, resolve_service
from gpumod.spec.checks import looks_secret
from gpumod.spec.resolved import ResolvedService

from ._helpers import loaded, problems_of

CATALOG = PresetCatalog.load()
POD = "kind: Pod\nname: box\nmode: m\n"
MODE = "kind: Mode\nname: m\nservices: [web]\n"


def service(env: str) -> str:
    return "kind: Service\nname: web\ndriver: command\ncommand: [x]\nport: 8080\nvram_mb: 100\nenv:\n" + env


def test_references_and_plain_values_validate(repo) -> None:
    root = repo(
        **{
            "pod.yaml": POD + "env:\n  HF_HOME: /data/hf\n  HF_TOKEN: {from_env: HF_TOKEN}\n",
            "svc.yaml": service("  A: plain\n  API_KEY: {from_file: keys/api}\n  DB_PASSWORD: {from_env: DB_PW}\n")
            + "---\n" + MODE,
        }
    )
    specs = loaded(root)
    assert specs.pod("box").env["HF_TOKEN"].from_env == "HF_TOKEN"
    assert specs.service("web").env["API_KEY"].from_file == "keys/api"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{from_env: A, from_file: b}",
            "env.T: a secret reference has exactly one key, from_env (a variable) or from_file (a path), got a mapping",
        ),
        (
            "{}",
            "env.T: a secret reference has exactly one key, from_env (a variable) or from_file (a path), got a mapping",
        ),
        ("{from_envv: A}", "unknown key 'from_envv'; did you mean 'from_env'?"),
        ("{from_env: 1BAD}", "env.T: from_env names an environment variable (letters, digits, '_'), got a mapping"),
        ("{from_file: ''}", "env.T: from_file is the path of a local file, got a mapping"),
        ("[a]", "env.T: input should be a valid string, got a list"),
    ],
)
def test_bad_references_are_reported_at_their_line(repo, value: str, message: str) -> None:
    root = repo(**{"svc.yaml": service(f"  OK: x\n  T: {value}\n")})
    assert problems_of(root) == [f"specs/svc.yaml:9: {message}"]


def test_a_nul_in_a_value_is_refused_sec_d10(repo) -> None:
    root = repo(**{"svc.yaml": service('  A: "x\\0y"\n')})
    assert problems_of(root) == [
        "specs/svc.yaml:8: env.A: contains a NUL (U+0000); remove it "
        "(values end up in unit files and command lines, so control characters are refused)"
    ]


def test_plain_text_secrets_are_refused_without_echoing_the_value(repo) -> None:
    root = repo(
        **{
            "pod.yaml": POD + "env:\n  HF_TOKEN: hf_podSECRETvalue\n",
            "svc.yaml": service(
                "  OPENAI_API_KEY: sk-svcSECRETvalue\n"
                "  db_password: hunter2SECRET\n"
                "  TOKENIZERS_PARALLELISM: 'false'\n"
                "  HF_TOKEN_PATH: /run/secrets/hf\n"
                "  EMPTY_TOKEN: ''\n"
                "  GOOD_TOKEN: {from_env: GOOD_TOKEN}\n"
            )
            + "---\n" + MODE,
        }
    )
    problems = problems_of(root)
    hint = "or {from_file: PATH} (see docs/secrets.md)"
    assert problems == [
        f"specs/pod.yaml:5: env HF_TOKEN looks like a secret in plain text; use HF_TOKEN: {{from_env: HF_TOKEN}} "
        f"{hint}",
        "specs/svc.yaml:8: env OPENAI_API_KEY looks like a secret in plain text; "
        f"use OPENAI_API_KEY: {{from_env: OPENAI_API_KEY}} {hint}",
        f"specs/svc.yaml:9: env db_password looks like a secret in plain text; use db_password: {{from_env: "
        f"db_password}} {hint}",
    ]
    assert not any("SECRET" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("HF_TOKEN", True), ("HUGGING_FACE_HUB_TOKEN", True), ("OPENAI_API_KEY", True), ("APIKEY", True),
        ("aws_secret_access_key", True), ("DB_PASSWORD", True), ("Client_Secret", True), ("MYSQL_PASSWD", True),
        ("TOKENIZERS_PARALLELISM", False), ("HF_TOKEN_PATH", False), ("KEY_FILE", False), ("MAX_TOKENS", False),
        ("CUDA_VISIBLE_DEVICES", False), ("HF_HOME", False),
    ],
)
def test_what_looks_like_a_secret(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_validation_checks_the_shape_not_the_presence(repo, monkeypatch) -> None:
    monkeypatch.delenv("GPUMOD_TEST_NOT_SET", raising=False)
    root = repo(
        **{"svc.yaml": service("  HF_TOKEN: {from_env: GPUMOD_TEST_NOT_SET}\n  K: {from_file: /nonexistent/k}\n")}
    )
    assert problems_of(root) == []


def resolved(root, name: str = "web", with_pod: bool = True) -> ResolvedService:
    specs = loaded(root)
    pod = specs.pod("box")
    return resolve_service(
        specs.service(name),
        CATALOG,
        gpu_name=None,
        source=specs.source("Service", name),
        pod_env=pod.env if (pod and with_pod) else None,
        pod_source=specs.source("Pod", "box"),
    )


def test_resolution_keeps_plain_values_and_secret_references_apart(repo) -> None:
    root = repo(
        **{
            "pods__box.yaml": POD
            + "env:\n  HF_TOKEN: {from_env: HF_TOKEN}\n  HF_HOME: /pod\n  SHARED: {from_file: pod.key}\n",
            "svc.yaml": service("  HF_HOME: /svc\n  SHARED: {from_env: SVC_SHARED}\n  API_KEY: {from_file: ~/k}\n")
            + "---\n"
            + MODE,
        }
    )
    svc = resolved(root)
    assert svc.env == (("HF_HOME", "/svc"),)  # the service's own env wins over the pod's
    assert svc.secrets == (("API_KEY", "file:~/k"), ("HF_TOKEN", "env:HF_TOKEN"), ("SHARED", "env:SVC_SHARED"))
    assert svc.secret_origins == (
        ("API_KEY", "specs/svc.yaml:1"), ("HF_TOKEN", "specs/pods/box.yaml:1"), ("SHARED", "specs/svc.yaml:1"),
    )


def test_the_hash_covers_references_never_values(repo) -> None:
    base = dict(name="web", driver="command", port=8080, command=("x",), vram_mb=100)
    plain = ResolvedService(**base)
    by_env = ResolvedService(**base, secrets=(("HF_TOKEN", "env:HF_TOKEN"),))
    by_other_env = ResolvedService(**base, secrets=(("HF_TOKEN", "env:OTHER"),))
    by_file = ResolvedService(**base, secrets=(("HF_TOKEN", "file:~/.hf"),))
    hashes = {s.spec_hash() for s in (plain, by_env, by_other_env, by_file)}
    assert len(hashes) == 4
    # where a relative file is declared from is not part of the spec: the same repo read from another
    # working directory keeps its hash
    assert ResolvedService(**base, secrets=(("K", "file:k"),), secret_origins=(("K", "a/s.yaml:1"),)).spec_hash() == (
        ResolvedService(**base, secrets=(("K", "file:k"),), secret_origins=(("K", "/x/a/s.yaml:1"),)).spec_hash()
    )


def test_services_without_secrets_or_docker_keep_their_hash() -> None:
    """Hashes computed with the code before secrets and docker existed: an upgrade restarts nothing."""
    command = ResolvedService(name="web", driver="command", port=8080, command=("x", "--port", "{port}"),
                              env=(("A", "1"),), vram_mb=100)
    vllm = ResolvedService(name="chat", driver="vllm", port=8000, model="Qwen/Qwen3-8B",
                           gpu_memory_utilization=0.5, sleep="l1")
    assert (command.spec_hash(), vllm.spec_hash()) == ("2e6cbffaeda4", "56c28a6b8560")


def test_a_secret_value_in_the_environment_changes_nothing(repo, monkeypatch) -> None:
    root = repo(**{"svc.yaml": service("  HF_TOKEN: {from_env: GPUMOD_TEST_HF}\n") + "---\n" + MODE, "pod.yaml": POD})
    monkeypatch.setenv("GPUMOD_TEST_HF", "value-one")
    first = resolved(root)
    monkeypatch.setenv("GPUMOD_TEST_HF", "value-two")
    second = resolved(root)
    assert first == second and first.spec_hash() == second.spec_hash()
    assert "value-" not in repr(first)
