"""Setup facts of a pod: the argv that reads them, and the pure parse into ``SetupFacts``.

pyinfra style: ``probe_argv`` is the command (the stdlib-only ``podside_setup.py`` run by the
pod's python), ``parse_facts`` turns its one JSON line into a frozen value. Every judgement lives
here, on recorded output: the driver and CUDA version from the ``nvidia-smi`` banner, uv's
version, the venv's Python and packages (dist-info names; vLLM's version from its METADATA, never
by importing it), whether ``models_path`` is a mount point (``/proc/mounts``, octal escapes
decoded), free disk, and which Hugging Face repos are in the hub cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "CachedRepo", "CachedSnapshot", "MountInfo", "SetupFacts", "hub_cache_dir_name", "normalize_name",
    "parse_facts", "parse_mounts", "parse_nvidia_smi_banner", "probe_argv", "probe_args", "probe_script",
]

_PODSIDE = Path(__file__).with_name("podside_setup.py")
_FUTURE = "from __future__ import annotations"
_DRIVER_RE = re.compile(r"Driver Version:\s*([0-9][0-9.]*)")
_CUDA_RE = re.compile(r"CUDA Version:\s*([0-9][0-9.]*)")
_UV_RE = re.compile(r"^uv\s+([0-9][^\s]*)", re.M)
_PYVENV_RE = re.compile(r"^\s*(version_info|version)\s*=\s*([0-9][0-9.]*)", re.M)
_METADATA_VERSION_RE = re.compile(r"^Version:\s*(\S+)", re.M)
_OCTAL_RE = re.compile(r"\\([0-7]{3})")


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name (``Hf_Transfer`` → ``hf-transfer``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def hub_cache_dir_name(repo: str) -> str:
    """``org/name`` → ``models--org--name`` (the hub cache folder of a model repo)."""
    return "models--" + repo.replace("/", "--")


@dataclass(frozen=True)
class MountInfo:
    source: str
    mountpoint: str
    fstype: str


@dataclass(frozen=True)
class CachedSnapshot:
    revision: str  # a commit hash
    files: tuple[tuple[str, int], ...]  # (path in repo, size in bytes; -1 = dangling link)

    @property
    def size(self) -> int:
        return sum(s for _, s in self.files if s > 0)

    def file_sizes(self) -> dict[str, int]:
        return dict(self.files)


@dataclass(frozen=True)
class CachedRepo:
    repo: str
    refs: tuple[tuple[str, str], ...]  # (branch or tag, commit)
    snapshots: tuple[CachedSnapshot, ...]
    incomplete: tuple[tuple[str, int], ...]  # (blob file name, bytes so far)

    @property
    def size(self) -> int:
        """Bytes of the complete files (a blob shared by two snapshots counts once per snapshot)."""
        return sum(s.size for s in self.snapshots)

    @property
    def incomplete_bytes(self) -> int:
        return sum(max(0, s) for _, s in self.incomplete)

    def commit_of(self, revision: str | None) -> str | None:
        """The commit a branch/tag (default ``main``) or hash points to here, if known."""
        rev = revision or "main"
        if re.fullmatch(r"[0-9a-f]{40}", rev):
            return rev
        return dict(self.refs).get(rev)

    def snapshot(self, revision: str | None) -> CachedSnapshot | None:
        commit = self.commit_of(revision)
        return next((s for s in self.snapshots if s.revision == commit), None)


@dataclass(frozen=True)
class SetupFacts:
    """What a pod has of the set-up (all paths absolute, as seen on the pod)."""

    home: str
    python: str  # the pod python that ran the probe, e.g. "3.11.7"
    driver_version: str | None  # "550.54.15"; None without a working nvidia-smi
    cuda_version: str | None  # the highest CUDA the driver supports, "12.4"
    nvidia_smi_error: str  # why there is no driver version ("" when there is one)
    uv_path: str | None
    uv_version: str | None
    venv_path: str
    venv_exists: bool
    venv_python: str | None  # "3.12.3" from pyvenv.cfg; None without a usable venv
    packages: tuple[tuple[str, str], ...]  # (normalized name, version) installed in the venv
    vllm_version: str | None
    models_path: str | None
    models_path_exists: bool
    models_path_writable: bool
    mount: MountInfo | None  # what is mounted exactly at models_path
    hf_cache: str
    hf_cache_source: str  # models_path | HF_HUB_CACHE | HUGGINGFACE_HUB_CACHE | HF_HOME | default
    free_bytes: int | None  # on models_path (or the HF cache), for downloads
    disk_path: str
    cached: tuple[CachedRepo, ...] = field(default=())

    def package(self, name: str) -> str | None:
        """Installed version of NAME in the venv, or None."""
        return dict(self.packages).get(normalize_name(name))

    def cached_repo(self, repo: str) -> CachedRepo | None:
        return next((r for r in self.cached if r.repo == repo), None)


# ---------------------------------------------------------------- the command


def probe_script() -> str:
    """The pod-side source (``podside_setup.py``) made into one ``-c`` script that prints the facts."""
    lines = [ln for ln in _PODSIDE.read_text().splitlines() if ln.strip() != _FUTURE]
    body = "\n".join(lines).split('\nif __name__ == "__main__":', 1)[0]
    return body + "\nsys.stdout.write(json.dumps(setup_facts(json.loads(sys.argv[1]))) + '\\n')\n"


def probe_args(
    venv: str, models_path: str | None, *, uv_paths: Sequence[str] = (), scan_cache: bool = True
) -> dict[str, Any]:
    return {"venv": venv, "models_path": models_path, "uv_paths": list(uv_paths), "scan_cache": scan_cache}


def probe_argv(python: str, args: Mapping[str, Any]) -> list[str]:
    """``python -S -c SCRIPT ARGS``: nothing secret in it (paths only)."""
    return [python, "-S", "-c", probe_script(), json.dumps(dict(args), sort_keys=True)]


# ---------------------------------------------------------------- the pure parse


def parse_nvidia_smi_banner(result: Sequence[Any] | None) -> tuple[str | None, str | None, str]:
    """``[rc, text]`` of a bare ``nvidia-smi`` → (driver version, CUDA version, error)."""
    if result is None:
        return None, None, "nvidia-smi not found (no NVIDIA driver on the pod)"
    code, text = int(result[0]), str(result[1])
    driver = _DRIVER_RE.search(text)
    cuda = _CUDA_RE.search(text)
    if code != 0 or driver is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")
        return None, None, f"nvidia-smi failed (exit {code}): {first}"
    return driver.group(1), cuda.group(1) if cuda else None, ""


def _unescape_mount(field_text: str) -> str:
    return _OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mounts(text: str | None) -> tuple[MountInfo, ...]:
    """``/proc/mounts`` → mounts in order (``\\040`` and friends decoded)."""
    mounts = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mounts.append(MountInfo(_unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2]))
    return tuple(mounts)


def _mount_at(mounts: tuple[MountInfo, ...], *paths: str) -> MountInfo | None:
    wanted = {p.rstrip("/") or "/" for p in paths if p}
    found = [m for m in mounts if m.mountpoint in wanted]
    return found[-1] if found else None  # the last mount on a point is the visible one


def _venv_python(pyvenv_cfg: str | None) -> str | None:
    if not pyvenv_cfg:
        return None
    found = {key: value for key, value in _PYVENV_RE.findall(pyvenv_cfg)}
    return found.get("version_info") or found.get("version")


def _dists(names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = {}
    for name in names:
        project, sep, version = name.partition("-")
        if sep:
            out[normalize_name(project)] = version
    return tuple(sorted(out.items()))


def _repo_of(folder: str) -> str | None:
    if not folder.startswith("models--"):
        return None
    return folder[len("models--"):].replace("--", "/")


def _cached(repos: Sequence[Mapping[str, Any]] | None) -> tuple[CachedRepo, ...]:
    out = []
    for raw in repos or ():
        repo = _repo_of(str(raw.get("dir", "")))
        if repo is None:
            continue
        snapshots = tuple(
            CachedSnapshot(rev, tuple((str(p), int(s)) for p, s in files))
            for rev, files in sorted((raw.get("snapshots") or {}).items())
        )
        out.append(CachedRepo(
            repo=repo,
            refs=tuple(sorted((str(k), str(v)) for k, v in (raw.get("refs") or {}).items())),
            snapshots=snapshots,
            incomplete=tuple((str(n), int(s)) for n, s in raw.get("incomplete") or ()),
        ))
    return tuple(sorted(out, key=lambda r: r.repo))


def parse_facts(stdout: str) -> SetupFacts:
    """The probe's output (its last JSON line) → SetupFacts. Raises ValueError on garbage."""
    line = next((ln for ln in reversed(stdout.strip().splitlines()) if ln.startswith("{")), None)
    if line is None:
        raise ValueError("the setup probe printed no JSON")
    raw = json.loads(line)
    driver, cuda, smi_error = parse_nvidia_smi_banner(raw.get("nvidia_smi"))
    uv = raw.get("uv") or {}
    uv_match = _UV_RE.search(str((uv.get("version") or [0, ""])[1])) if uv.get("path") else None
    venv = raw.get("venv") or {}
    venv_python = _venv_python(venv.get("pyvenv_cfg")) if venv.get("python_ok") else None
    packages = _dists(venv.get("dists") or ()) if venv_python else ()
    vllm = None
    if venv_python and venv.get("vllm_metadata"):
        found = _METADATA_VERSION_RE.search(venv["vllm_metadata"])
        vllm = found.group(1) if found else None
    models = raw.get("models_path")
    cache = raw.get("hf_cache") or {}
    disk = raw.get("disk") or {}
    mounts = parse_mounts(raw.get("mounts"))
    return SetupFacts(
        home=str(raw.get("home", "")),
        python=str(raw.get("python", "")),
        driver_version=driver,
        cuda_version=cuda,
        nvidia_smi_error=smi_error,
        uv_path=uv.get("path") if uv_match else None,
        uv_version=uv_match.group(1) if uv_match else None,
        venv_path=str(venv.get("path", "")),
        venv_exists=bool(venv.get("exists")),
        venv_python=venv_python,
        packages=packages,
        vllm_version=vllm,
        models_path=models["path"] if models else None,
        models_path_exists=bool(models and models.get("exists")),
        models_path_writable=bool(models and models.get("writable")),
        mount=_mount_at(mounts, models["path"], models.get("real", "")) if models else None,
        hf_cache=str(cache.get("path", "")),
        hf_cache_source=str(cache.get("source", "")),
        free_bytes=disk.get("free"),
        disk_path=str(disk.get("path", "")),
        cached=_cached(cache.get("repos")),
    )
