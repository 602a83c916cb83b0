"""A local PEP 503 package index for tests, built at test time with no internet.

Why: issue 9's setup installs uv, a venv, vLLM, huggingface_hub and hf_transfer on a bare pod;
tests do that for real (pip or uv on the pod side) against this index instead of PyPI, through
the ``index_url`` of the Pod's ``setup:``. It holds:

- a small ``vllm`` wheel (``vllm_wheel``) whose ``vllm`` console command execs the sim server the
  way sim pods run it today (``gpumod.sim.attach.sim_binaries``: ``PYTHON -m gpumod.sim.server
  --flavour vllm -- ARGV``). The venv it lands in has no gpumod, so the wheel carries the path
  of a Python that has (the test's ``sys.executable``; netns pods share the host filesystem),
  overridable on the pod with ``GPUMOD_SIM_PYTHON``. ``vllm --version`` prints its version.
- a dummy ``hf_transfer`` wheel;
- wheels repacked from distributions installed in the test venv (``repack_installed``), e.g.
  ``huggingface_hub`` and its requirements, and ``uv`` (its binary travels in ``.data/scripts``
  exactly as in the PyPI wheel), so the real tools install offline.

``PackageIndex(root).serve(host)`` serves it over HTTP (threaded, loopback or a pod bridge IP)
and logs each request path. No pytest import here.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import importlib.metadata as md
import io
import json
import re
import sys
import threading
import zipfile
from collections.abc import Iterable, Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["PackageIndex", "hf_transfer_wheel", "make_wheel", "repack_installed", "requirement_closure", "vllm_wheel"]

_SIM_SHIM = '''"""gpumod test stand-in for vLLM: runs gpumod's simulated vLLM server."""
import json
import os
import sys
from pathlib import Path

__version__ = {version!r}


def main():
    if sys.argv[1:2] in (["--version"], ["-v"]):
        print(__version__)
        return 0
    conf = json.loads((Path(__file__).parent / "_gpumod_sim.json").read_text())
    python = os.environ.get("GPUMOD_SIM_PYTHON") or conf["python"]
    os.execv(python, [python, "-m", "gpumod.sim.server", "--flavour", "vllm", "--", *sys.argv[1:]])
'''


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    console_scripts: Mapping[str, str] | None = None,
    requires: Iterable[str] = (),
    tag: str = "py3-none-any",
    metadata_extra: str = "",
) -> Path:
    """Write ``NAME-VERSION-TAG.whl`` into DEST: FILES (paths relative to site-packages, or
    ``NAME-VERSION.data/scripts/...``), plus METADATA, WHEEL, entry_points.txt and RECORD."""
    dist = f"{_wheel_name(name)}-{version}"
    info = f"{dist}.dist-info"
    content = dict(files)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires) + metadata_extra
    content[f"{info}/METADATA"] = meta.encode()
    content[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: gpumod-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()
    if console_scripts:
        lines = "".join(f"{k} = {v}\n" for k, v in sorted(console_scripts.items()))
        content[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in sorted(content.items()):
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    content[f"{info}/RECORD"] = record.getvalue().encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in content.items():
            zi = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            zi.external_attr = (0o100755 if "/scripts/" in path else 0o100644) << 16
            zf.writestr(zi, data)
    return wheel


def vllm_wheel(dest: Path, version: str = "0.10.1", *, sim_python: str | None = None) -> Path:
    """The stand-in vLLM: ``vllm serve MODEL ...`` runs gpumod's sim vLLM server."""
    conf = json.dumps({"python": sim_python or sys.executable}).encode()
    return make_wheel(
        dest, "vllm", version,
        {"vllm/__init__.py": _SIM_SHIM.format(version=version).encode(), "vllm/_gpumod_sim.json": conf},
        console_scripts={"vllm": "vllm:main"},
    )


def hf_transfer_wheel(dest: Path, version: str = "0.1.9") -> Path:
    body = f'"""gpumod test stand-in for hf_transfer (does nothing)."""\n__version__ = {version!r}\n'
    return make_wheel(dest, "hf_transfer", version, {"hf_transfer/__init__.py": body.encode()})


def repack_installed(dest: Path, dist_name: str) -> Path:
    """A wheel rebuilt from an installed distribution (its RECORD and its original WHEEL tags).

    Files installed outside site-packages into ``bin/`` go back to ``.data/scripts`` unless they
    are console scripts (the installer regenerates those); other outside files are left out.
    """
    dist = md.distribution(dist_name)
    name, version = dist.metadata["Name"], dist.version
    prefix = f"{_wheel_name(name)}-{version}"
    entry_scripts = {ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
    files: dict[str, bytes] = {}
    wheel_text = ""
    for item in dist.files or ():
        rel = str(item)
        full = Path(str(dist.locate_file(item)))
        if rel.endswith((".pyc", "/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")) or not full.is_file():
            continue
        if rel.endswith(".dist-info/WHEEL"):
            wheel_text = full.read_text()
            continue
        if rel.startswith(".."):
            resolved = full.resolve()
            if resolved.parent.name == "bin" and resolved.name not in entry_scripts:
                files[f"{prefix}.data/scripts/{resolved.name}"] = resolved.read_bytes()
            continue
        if rel.endswith(".dist-info/METADATA") or ".dist-info/" in rel:
            if rel.endswith(("/METADATA", "/entry_points.txt")) or "/licenses/" in rel or "LICENSE" in rel:
                files[f"{prefix}.dist-info/{rel.split('.dist-info/', 1)[1]}"] = full.read_bytes()
            continue
        files[rel] = full.read_bytes()
    tags = re.findall(r"^Tag:\s*(\S+)$", wheel_text, re.M) or ["py3-none-any"]
    tag = tags[0]
    # make_wheel writes its own METADATA/WHEEL/RECORD: hand it the original METADATA text
    meta = files.pop(f"{prefix}.dist-info/METADATA", b"").decode()
    own = ("Name:", "Version:", "Metadata-Version:")
    headers = meta.split("\n\n", 1)[0]  # the header block only: the long description is left out
    extra = "".join(ln + "\n" for ln in headers.splitlines() if ln and not ln.startswith(own))
    return make_wheel(dest, name, version, files, tag=tag, metadata_extra=extra)


def requirement_closure(names: Iterable[str]) -> list[str]:
    """Installed distributions NAMES need (their Requires-Dist whose markers hold here, no extras)."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = list(names)
    while todo:
        req = Requirement(todo.pop())
        key = normalize(req.name)
        if key in seen:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        seen[key] = dist.metadata["Name"]
        for line in dist.requires or ():
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(line)
    return sorted(seen.values(), key=normalize)


class PackageIndex:
    """ROOT/files/*.whl plus ROOT/simple/<project>/index.html (PEP 503, with sha256 fragments)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files = self.root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, wheel: Path) -> Path:
        target = self.files / wheel.name
        if wheel.resolve() != target.resolve():
            target.write_bytes(wheel.read_bytes())
        return target

    def build(self) -> None:
        """(Re)write the simple/ pages from the wheels in files/."""
        projects: dict[str, list[Path]] = {}
        for wheel in sorted(self.files.glob("*.whl")):
            projects.setdefault(normalize(wheel.name.split("-")[0]), []).append(wheel)
        simple = self.root / "simple"
        simple.mkdir(exist_ok=True)
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
        (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
        for project, wheels in projects.items():
            (simple / project).mkdir(exist_ok=True)
            rows = "".join(
                f'<a href="../../files/{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                f"{html.escape(w.name)}</a>\n"
                for w in wheels
            )
            (simple / project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{rows}</body></html>\n")

    # -- serving

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; returns the index URL (``http://HOST:PORT/simple``)."""
        self.build()
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                index.requests.append(self.path)

        self._server = ThreadingHTTPServer((host, port), partial(Handler, directory=str(self.root)))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "serve() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/simple"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PackageIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def standard_index(root: Path, *, vllm_version: str = "0.10.1", with_uv: bool = True,
                   with_hub: bool = True, sim_python: str | None = None) -> PackageIndex:
    """The index issue-9 tests use: vllm (sim), hf_transfer, and, when installed here, uv and
    huggingface_hub with its requirements."""
    index = PackageIndex(root)
    index.add(vllm_wheel(index.files, vllm_version, sim_python=sim_python))
    index.add(hf_transfer_wheel(index.files))
    names = []
    if with_hub:
        names += requirement_closure(["huggingface_hub"])
    if with_uv:
        names += ["uv"]
    for name in names:
        try:
            index.add(repack_installed(index.files, name))
        except md.PackageNotFoundError:
            continue
    index.build()
    return index
