"""A local Hugging Face Hub for tests: the endpoints ``huggingface_hub`` uses, over real HTTP.

Why: issue 9's downloads run the real ``huggingface_hub`` (``snapshot_download``,
``hf_hub_download``, ``HfApi().model_info(files_metadata=True)``) on a pod with no internet; with
``HF_ENDPOINT`` pointing here it talks to this server instead. Checked against huggingface_hub
2.4.0 (file_download.py, _snapshot_download.py, hf_api.py), which calls:

    GET  /api/models/{repo}[/revision/{rev}]      repo_info / model_info (?blobs=True: sizes)
    GET  /api/models/{repo}/tree/{rev}[/{path}]   list_repo_tree (?recursive=True), Link paging
    HEAD /{repo}/resolve/{rev}/{file}             metadata: X-Repo-Commit, ETag, Content-Length;
                                                  for LFS files a 302 to another origin carrying
                                                  X-Linked-Etag / X-Linked-Size, like the real hub
    GET  <cdn>/cdn/{sha256}                        the LFS bytes, with Range (206) for resumes

LFS files are served from a second port (a different origin, as the real CDN is), so the client
does not follow the redirect on HEAD and reads the metadata off the 302 itself.

The access log records every request with its Range header and the body bytes actually sent, so
a test can prove bytes were not fetched twice. Faults, one-shot per file: ``drop_after(path, n)``
sends n bytes then cuts the connection (the client resumes with Range); ``hold_after(path, n)``
sends n bytes then waits for the returned event (a test kills the downloader meanwhile).

Files are generated, deterministic (seeded bytes): ``HubRepo.generate("org/name", {"a.bin": 3<<20})``.
No pytest import here: benchmarks use this module too.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["AccessRecord", "HubFile", "HubRepo", "HubServer", "generated_bytes"]

LFS_THRESHOLD = 64 * 1024  # files this big (and *.safetensors, *.bin, *.gguf) are "LFS"
_LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_CHUNK = 64 * 1024


def generated_bytes(name: str, size: int) -> bytes:
    """SIZE deterministic pseudo-random bytes named NAME (the same on every run)."""
    rng = random.Random(name)
    block = 1 << 20  # randbytes(n) overflows past 256 MiB: build big files block by block
    return b"".join(rng.randbytes(min(block, size - at)) for at in range(0, size, block))


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class HubFile:
    path: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def lfs(self) -> bool:
        return self.size >= LFS_THRESHOLD or self.path.endswith(_LFS_SUFFIXES)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        """The git blob id: of the LFS pointer for LFS files, of the content otherwise."""
        if self.lfs:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
            return _git_oid(pointer.encode())
        return _git_oid(self.data)


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    files: tuple[HubFile, ...]
    branch: str = "main"

    @property
    def commit(self) -> str:
        """A deterministic 40-hex commit id of this content."""
        h = hashlib.sha1(self.repo_id.encode())
        for f in sorted(self.files, key=lambda f: f.path):
            h.update(f.path.encode() + b"\0" + f.git_oid.encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, path: str) -> HubFile | None:
        return next((f for f in self.files if f.path == path), None)

    @classmethod
    def generate(cls, repo_id: str, sizes: Mapping[str, int], texts: Mapping[str, str] | None = None) -> HubRepo:
        """A repo of generated binary files (path → size) plus small text files (path → content)."""
        files = [HubFile(p, generated_bytes(f"{repo_id}/{p}", n)) for p, n in sizes.items()]
        files += [HubFile(p, t.encode()) for p, t in (texts or {}).items()]
        return cls(repo_id, tuple(sorted(files, key=lambda f: f.path)))


@dataclass
class AccessRecord:
    """One request as the server saw it; ``bytes_sent`` grows while the body is being sent."""

    method: str
    path: str
    range: str | None
    status: int = 0
    bytes_sent: int = 0
    done: bool = False
    file: str | None = None  # "repo/path" of the file whose bytes this request carried
    auth: bool = False  # an Authorization header came with it


@dataclass
class _Fault:
    kind: str  # drop | hold
    after: int
    event: threading.Event


class HubServer:
    """The local hub: ``with HubServer([repo]) as hub: os.environ["HF_ENDPOINT"] = hub.endpoint``."""

    def __init__(self, repos: Iterable[HubRepo], host: str = "127.0.0.1", port: int = 0) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.host = host
        self._lock = threading.Lock()
        self._log: list[AccessRecord] = []
        self._faults: dict[str, _Fault] = {}
        self._stopping = threading.Event()
        handler = _make_handler(self)
        self._api = ThreadingHTTPServer((host, port), handler)
        self._cdn = ThreadingHTTPServer((host, 0), handler)
        for server in (self._api, self._cdn):
            server.daemon_threads = True
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="hubserver")
            for s in (self._api, self._cdn)
        ]

    # -- lifecycle

    def start(self) -> HubServer:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for fault in self._faults.values():
                fault.event.set()
        for server in (self._api, self._cdn):
            server.shutdown()
            server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self._api.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://{self.host}:{self._cdn.server_address[1]}"

    # -- faults

    def drop_after(self, repo_id: str, path: str, nbytes: int) -> None:
        """The next GET of that file sends NBYTES of its body, then the connection is cut."""
        with self._lock:
            self._faults[f"{repo_id}/{path}"] = _Fault("drop", nbytes, threading.Event())

    def hold_after(self, repo_id: str, path: str, nbytes: int) -> threading.Event:
        """The next GET of that file sends NBYTES, then waits until the returned event is set
        (or the server stops), then cuts the connection."""
        event = threading.Event()
        with self._lock:
            self._faults[f"{repo_id}/{path}"] = _Fault("hold", nbytes, event)
        return event

    def _take_fault(self, key: str) -> _Fault | None:
        with self._lock:
            return self._faults.pop(key, None)

    # -- the access log

    def log(self) -> list[AccessRecord]:
        with self._lock:
            return [AccessRecord(**vars(r)) for r in self._log]

    def _record(self, record: AccessRecord) -> AccessRecord:
        with self._lock:
            self._log.append(record)
        return record

    def _update(self, record: AccessRecord, **changes: object) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(record, key, value)

    def bytes_sent(self, repo_id: str, path: str) -> int:
        """Body bytes of that file sent so far, over every request."""
        key = f"{repo_id}/{path}"
        return sum(r.bytes_sent for r in self.log() if r.file == key and r.method == "GET")

    def wait_bytes(self, repo_id: str, path: str, nbytes: int, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bytes_sent(repo_id, path) >= nbytes:
                return True
            time.sleep(0.01)
        return False

    # -- the hub's answers (used by the handler)

    def resolve(self, repo_id: str, revision: str) -> HubRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None or revision not in (repo.branch, repo.commit):
            return None
        return repo

    def blob(self, sha256: str) -> tuple[HubRepo, HubFile] | None:
        for repo in self.repos.values():
            for f in repo.files:
                if f.lfs and f.sha256 == sha256:
                    return repo, f
        return None


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(start, end inclusive) of ``bytes=a-b`` / ``bytes=a-``; None = whole file; False = unsatisfiable."""
    if not header:
        return None
    if not header.startswith("bytes=") or "," in header:
        return False
    first, _, last = header[len("bytes="):].partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), (int(last) if last else size - 1)
    except ValueError:
        return False
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "gpumod-test-hub"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        # -- plumbing

        def _headers(self, status: int, headers: Mapping[str, str], length: int) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def _json(self, record: AccessRecord, status: int, payload: object,
                  headers: Mapping[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self._headers(status, {"Content-Type": "application/json", **(headers or {})}, len(body))
            if self.command != "HEAD":
                self.wfile.write(body)
            hub._update(record, status=status, done=True)

        def _error(self, record: AccessRecord, status: int, code: str, message: str,
                   headers: Mapping[str, str] | None = None) -> None:
            errors = {"X-Error-Code": code, "X-Error-Message": message}
            self._json(record, status, {"error": message}, {**errors, **(headers or {})})

        def do_HEAD(self) -> None:
            self._route()

        def do_GET(self) -> None:
            self._route()

        def _route(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            record = hub._record(AccessRecord(self.command, self.path, self.headers.get("Range"),
                                              auth=self.headers.get("Authorization") is not None))
            try:
                if path.startswith("/api/models/"):
                    self._api(record, path[len("/api/models/"):], parse_qs(url.query))
                elif path.startswith("/cdn/"):
                    self._cdn(record, path[len("/cdn/"):])
                elif "/resolve/" in path:
                    self._resolve(record, path.lstrip("/"))
                else:
                    self._error(record, 404, "NotFound", f"no route for {path}")
            except (BrokenPipeError, ConnectionResetError):
                hub._update(record, done=True)

        # -- /api/models

        def _api(self, record: AccessRecord, rest: str, query: dict[str, list[str]]) -> None:
            repo_id, tail = rest, ""
            for marker in ("/revision/", "/tree/"):
                if marker in rest:
                    repo_id, _, tail = rest.partition(marker)
                    tail = marker.strip("/") + "/" + tail
                    break
            if repo_id not in hub.repos:
                self._error(record, 404, "RepoNotFound", f"Repository {repo_id} not found")
                return
            kind, _, rev_path = tail.partition("/")
            revision, _, sub = rev_path.partition("/")
            repo = hub.resolve(repo_id, revision or hub.repos[repo_id].branch)
            if repo is None:
                self._error(record, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            if kind == "tree":
                prefix = sub.strip("/")
                entries = [
                    _tree_entry(f) for f in repo.files
                    if not prefix or f.path.startswith(prefix + "/")
                ]
                self._json(record, 200, entries)
                return
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            self._json(record, 200, _model_info(repo, blobs))

        # -- /{repo}/resolve/{rev}/{file}

        def _resolve(self, record: AccessRecord, rest: str) -> None:
            head, _, tail = rest.partition("/resolve/")
            repo_id = head
            revision, _, file_path = tail.partition("/")
            if repo_id not in hub.repos:
                self._error(record, 404, "RepoNotFound", f"Repository {repo_id} not found")
                return
            repo = hub.resolve(repo_id, revision)
            if repo is None:
                self._error(record, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            hub_file = repo.file(file_path)
            common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
            if hub_file is None:
                self._error(record, 404, "EntryNotFound", f"{file_path} does not exist", common)
                return
            if hub_file.lfs:
                location = f"{hub.cdn}/cdn/{hub_file.sha256}?repo={quote(repo_id)}&file={quote(file_path)}"
                headers = {
                    **common, "ETag": f'"{hub_file.git_oid}"', "X-Linked-Etag": f'"{hub_file.sha256}"',
                    "X-Linked-Size": str(hub_file.size), "Location": location,
                }
                self._headers(302, headers, 0)
                hub._update(record, status=302, done=True)
                return
            self._send_file(record, repo, hub_file, {**common, "ETag": f'"{hub_file.git_oid}"'})

        # -- the CDN

        def _cdn(self, record: AccessRecord, sha256: str) -> None:
            found = hub.blob(sha256)
            if found is None:
                self._error(record, 404, "NotFound", "no such blob")
                return
            repo, hub_file = found
            self._send_file(record, repo, hub_file, {"ETag": f'"{hub_file.sha256}"', "Accept-Ranges": "bytes"})

        def _send_file(self, record: AccessRecord, repo: HubRepo, hub_file: HubFile,
                       headers: Mapping[str, str]) -> None:
            key = f"{repo.repo_id}/{hub_file.path}"
            hub._update(record, file=key)
            wanted = _parse_range(self.headers.get("Range"), hub_file.size)
            if wanted is False:
                self._headers(416, {**headers, "Content-Range": f"bytes */{hub_file.size}"}, 0)
                hub._update(record, status=416, done=True)
                return
            start, end = wanted if wanted else (0, hub_file.size - 1)
            status = 206 if wanted else 200
            extra = {"Content-Range": f"bytes {start}-{end}/{hub_file.size}"} if wanted else {}
            self._headers(status, {**headers, **extra, "Content-Type": "application/octet-stream"}, end - start + 1)
            hub._update(record, status=status)
            if self.command == "HEAD":
                hub._update(record, done=True)
                return
            fault = hub._take_fault(key)
            body = memoryview(hub_file.data)[start:end + 1]
            limit = len(body) if fault is None else min(len(body), fault.after)
            sent = 0
            while sent < limit:
                chunk = body[sent:min(limit, sent + _CHUNK)]
                self.wfile.write(chunk)
                sent += len(chunk)
                hub._update(record, bytes_sent=sent)
            if fault is not None and limit < len(body):
                self.wfile.flush()
                if fault.kind == "hold":
                    while not fault.event.wait(0.05) and not hub._stopping.is_set():
                        pass
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            hub._update(record, done=True)

    return Handler


def _tree_entry(f: HubFile) -> dict:
    entry: dict = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
    if f.lfs:
        entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
    return entry


def _model_info(repo: HubRepo, blobs: bool) -> dict:
    siblings = []
    for f in repo.files:
        sibling: dict = {"rfilename": f.path}
        if blobs:
            sibling.update(size=f.size, blobId=f.git_oid)
            if f.lfs:
                sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": 134}
        siblings.append(sibling)
    return {
        "_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit,
        "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
        "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
        "siblings": siblings,
    }
