"""load_secret_values: secrets read at apply time from the environment or local files; every
problem names the variable or file and how to provide it, and never contains a value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gpumod.errors import SpecError
from gpumod.secrets import load_secret_values, secret_file
from gpumod.spec import PresetCatalog, load_specs, resolve_service
from gpumod.spec.resolved import ResolvedService

SECRET = "hf_s3cr3t-VALUE-do-not-print"


def svc(*secrets: tuple[str, str], origin: str = "specs/svc.yaml:1") -> ResolvedService:
    return ResolvedService(
        name="web", driver="command", port=8080, source=origin, secrets=tuple(secrets),
        secret_origins=tuple((k, origin) for k, _ in secrets),
    )


def problems(err: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_from_env() -> None:
    values = load_secret_values(svc(("HF_TOKEN", "env:MY_HF")), {"MY_HF": SECRET})
    assert values == {"HF_TOKEN": SECRET}


def test_from_file_absolute_relative_and_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    private(tmp_path / "specs/keys/api", SECRET + "\n")
    private(tmp_path / "home/.hf", "from-home\r\n")
    private(tmp_path / "abs", "line1\nline2\n\n")
    service = svc(
        ("API_KEY", "file:keys/api"),  # relative to the folder of the spec file that declares it
        ("HF_TOKEN", "file:~/.hf"),
        ("MULTI", f"file:{tmp_path / 'abs'}"),
    )
    warnings: list[str] = []
    values = load_secret_values(service, {"HOME": str(tmp_path / "home")}, warn=warnings.append)
    assert values == {"API_KEY": SECRET, "HF_TOKEN": "from-home", "MULTI": "line1\nline2"}
    assert warnings == []


def test_secret_file_paths(tmp_path: Path) -> None:
    env = {"HOME": "/home/u"}
    assert secret_file("~/x", "a/b.yaml:3", env) == Path("/home/u/x")
    assert secret_file("/k", "a/b.yaml:3", env) == Path("/k")
    assert secret_file("k/../j", "/r/a/b.yaml:3", env) == Path("/r/a/k/../j")


def test_missing_env_and_files_are_spec_problems_at_the_origin(tmp_path: Path) -> None:
    origin_pod = f"{tmp_path}/pods/box.yaml:1"
    service = ResolvedService(
        name="web", driver="command", port=1, source="specs/svc.yaml:4",
        secrets=(("A", "env:NOT_SET"), ("B", "env:EMPTY"), ("C", "file:nope"), ("D", "env:SET")),
        secret_origins=(("A", "specs/svc.yaml:4"), ("B", "specs/svc.yaml:4"), ("C", origin_pod), ("D", origin_pod)),
    )
    with pytest.raises(SpecError) as err:
        load_secret_values(service, {"EMPTY": "", "SET": SECRET})
    assert problems(err) == [
        f"{tmp_path}/pods/box.yaml:1: service web: C comes from the file {tmp_path}/pods/nope, which does not exist; "
        "write the secret into it and chmod 600 it",
        "specs/svc.yaml:4: service web: A comes from the environment variable NOT_SET, which is not set; "
        "export NOT_SET in the shell that runs gpumod (or use {from_file: PATH})",
        "specs/svc.yaml:4: service web: B comes from the environment variable EMPTY, which is empty; "
        "export EMPTY with the secret in the shell that runs gpumod",
    ]
    assert SECRET not in str(err.value) + " ".join(problems(err))


def test_unreadable_or_odd_files_never_show_their_content(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    private(tmp_path / "empty", "\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + SECRET.encode())
    (tmp_path / "nul").write_bytes(SECRET.encode() + b"\x00tail")
    (tmp_path / "big").write_bytes(SECRET.encode() * 5000)
    origin = f"{tmp_path}/s.yaml:2"
    service = svc(*((k, f"file:{k.lower()}") for k in ("DIR", "EMPTY", "BINARY", "NUL", "BIG")), origin=origin)
    with pytest.raises(SpecError) as err:
        load_secret_values(service, {}, warn=lambda _: None)
    text = "\n".join(problems(err))
    for what in ("is not a regular file", "is empty", "is not UTF-8 text", "contains a NUL byte", "larger than 64 KiB"):
        assert what in text
    assert "s3cr3t" not in text


@pytest.mark.parametrize(
    ("mode", "warned"), [(0o600, False), (0o400, False), (0o640, True), (0o644, True), (0o602, True)]
)
def test_files_other_users_can_read_are_used_with_a_warning(tmp_path: Path, mode: int, warned: bool) -> None:
    path = private(tmp_path / "k", SECRET, mode=mode)
    warnings: list[str] = []
    assert load_secret_values(svc(("K", f"file:{path}")), {}, warn=warnings.append) == {"K": SECRET}
    if warned:
        assert warnings == [
            f"service web: K comes from the file {path}, which other users can read or change "
            f"(mode {mode:04o}); run chmod 600 {path}"
        ]
    else:
        assert warnings == []


def test_from_a_spec_repo_end_to_end(tmp_path: Path, monkeypatch) -> None:
    """Pod-level and service-level secrets, each relative file read from its own spec file's folder."""
    monkeypatch.chdir(tmp_path)
    specs_dir = tmp_path / "specs"
    (specs_dir / "pods").mkdir(parents=True)
    (specs_dir / "services").mkdir()
    (specs_dir / "pods/box.yaml").write_text(textwrap.dedent("""\
        kind: Pod
        name: box
        mode: m
        env:
          HF_TOKEN: {from_env: GPUMOD_TEST_HF}
          POD_KEY: {from_file: pod.key}
        ---
        kind: Mode
        name: m
        services: [web]
        """))
    (specs_dir / "services/web.yaml").write_text(textwrap.dedent("""\
        kind: Service
        name: web
        driver: command
        command: [x]
        port: 8080
        vram_mb: 100
        env:
          PLAIN: value
          SVC_KEY: {from_file: svc.key}
        """))
    private(specs_dir / "pods/pod.key", "pod-secret\n")
    private(specs_dir / "services/svc.key", "svc-secret\n")
    specs = load_specs(specs_dir)
    resolved = resolve_service(
        specs.service("web"), PresetCatalog.load(), gpu_name=None, source=specs.source("Service", "web"),
        pod_env=specs.pod("box").env, pod_source=specs.source("Pod", "box"),
        env_sources=specs.env_sources("box", "web"),
    )
    values = load_secret_values(resolved, {"GPUMOD_TEST_HF": SECRET}, warn=lambda _: None)
    assert values == {"HF_TOKEN": SECRET, "POD_KEY": "pod-secret", "SVC_KEY": "svc-secret"}
    assert resolved.env == (("PLAIN", "value"),)
    with pytest.raises(SpecError) as err:
        load_secret_values(resolved, {}, warn=lambda _: None)
    # each problem points at the env entry that declares the secret, not at its document (issue 6, item 13)
    assert problems(err) == [
        "specs/pods/box.yaml:5: service web: HF_TOKEN comes from the environment variable GPUMOD_TEST_HF, "
        "which is not set; export GPUMOD_TEST_HF in the shell that runs gpumod (or use {from_file: PATH})"
    ]
    (specs_dir / "services/svc.key").unlink()
    with pytest.raises(SpecError) as err:
        load_secret_values(resolved, {"GPUMOD_TEST_HF": SECRET}, warn=lambda _: None)
    assert problems(err) == [
        f"specs/services/web.yaml:9: service web: SVC_KEY comes from the file {specs_dir}/services/svc.key, "
        "which does not exist; write the secret into it and chmod 600 it"
    ]
