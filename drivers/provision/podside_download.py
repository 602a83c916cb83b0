"""Pod side of a model download: fetch a Hugging Face repo into the hub cache, resumable.

Why not ``huggingface_hub.snapshot_download``: since huggingface_hub 1.x/2.x (PR #4228) each file
is fetched into a process-unique ``<etag>.<uuid>.incomplete`` that a later process never reuses,
and bytes reach the disk only every 10 MiB; a download killed by Ctrl+C or a dropped SSH
connection starts every unfinished file from zero. This fetcher keeps one ``blobs/<etag>.incomplete``
per file, writes in small pieces, and resumes it with an HTTP Range request, so no byte is fetched
twice. It writes the hub's own cache layout (``blobs/<etag>``, ``snapshots/<commit>/<path>`` as
relative links, ``refs/<revision>``), so vLLM and huggingface_hub find the files as if they had
downloaded them. The etag is the one the hub reports: the LFS sha256, else the git blob id.

Standard library only, Python 3.8 syntax (runs under any pod python). Arguments (JSON): ``repo``,
``revision`` (default main), ``cache`` (the hub cache directory), ``endpoint`` (default
$HF_ENDPOINT or https://huggingface.co). The token comes from $HF_TOKEN only (never argv) and is
not sent to a redirect target on another host. Output: one JSON event per line (see
``gpumod.drivers.provision.download.parse_event``).
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

DEFAULT_ENDPOINT = "https://huggingface.co"
PIECE = 256 * 1024
PROGRESS_EVERY_S = 0.25
ATTEMPTS = 5


class DownloadError(Exception):
    pass


def _emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _request(url, token, extra=None):
    req = urllib.request.Request(url, headers={"User-Agent": "gpumod", "Accept-Encoding": "identity"})
    for key, value in (extra or {}).items():
        req.add_header(key, value)
    if token:
        req.add_unredirected_header("Authorization", "Bearer " + token)  # never follows a redirect
    return req


def repo_files(endpoint, repo, revision, token):
    """(commit, [(path, size, etag)]) from the hub's model info with file metadata."""
    url = "%s/api/models/%s/revision/%s?blobs=true" % (endpoint, repo, quote(revision, safe=""))
    try:
        with urllib.request.urlopen(_request(url, token), timeout=30) as resp:
            info = json.loads(resp.read().decode())
    except urllib.error.HTTPError as err:
        code = err.headers.get("X-Error-Code") or ""
        raise DownloadError("%s@%s: hub answered %s %s" % (repo, revision, err.code, code or err.reason)) from err
    files = []
    for sibling in info.get("siblings") or []:
        lfs = sibling.get("lfs") or {}
        etag = lfs.get("sha256") or sibling.get("blobId")
        if sibling.get("size") is None or not etag:
            raise DownloadError("the hub gave no size/etag for %s" % sibling.get("rfilename"))
        files.append((sibling["rfilename"], int(sibling["size"]), etag))
    return info["sha"], files


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def _link(storage, commit, path, etag):
    link = os.path.join(storage, "snapshots", commit, path)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    target = os.path.relpath(os.path.join(storage, "blobs", etag), os.path.dirname(link))
    if os.path.islink(link) and os.readlink(link) == target:
        return
    tmp = "%s.gpumod-link.%d" % (link, os.getpid())  # per process: pods sharing a cache link at once
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


class _Progress(object):
    def __init__(self, total, done):
        self.total, self.done, self.started = total, done, time.monotonic()
        self.fetched, self.last = 0, 0.0

    def add(self, path, n, force=False):
        self.done += n
        self.fetched += n
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = self.fetched / max(now - self.started, 1e-6)
            _emit("progress", file=path, done=self.done, total=self.total, rate=int(rate))


def _fetch(url, token, part, size, path, progress):
    """Bring PART to SIZE bytes, resuming from what it holds."""
    for attempt in range(ATTEMPTS):
        have = _size(part)
        if have > size:
            os.truncate(part, 0)
            have = 0
        if have == size:
            return
        headers = {"Range": "bytes=%d-" % have} if have > 0 else {}
        try:
            with urllib.request.urlopen(_request(url, token, headers), timeout=60) as resp:
                mode = "ab"
                if have > 0 and resp.status == 200:  # the server ignored the Range: start over
                    mode, have = "wb", 0
                with open(part, mode) as out:
                    while True:
                        piece = resp.read(PIECE)
                        if not piece:
                            break
                        out.write(piece)
                        out.flush()
                        progress.add(path, len(piece))
            if _size(part) < size:  # the body ended early without an error (connection closed)
                raise ValueError("connection closed after %d of %d bytes" % (_size(part), size))
        except urllib.error.HTTPError as err:
            if err.code == 416 and _size(part) == size:
                return
            raise DownloadError("%s: hub answered %s %s" % (path, err.code, err.reason)) from err
        except (OSError, ValueError, http.client.HTTPException) as err:  # dropped, timed out, truncated
            if attempt + 1 == ATTEMPTS:
                raise DownloadError("%s: %s (kept %d bytes; run again to resume)" % (path, err, _size(part))) from err
            _emit("retry", file=path, error=str(err), have=_size(part))
            time.sleep(min(2 ** attempt, 10) * 0.2)
    if _size(part) != size:
        raise DownloadError("%s: got %d bytes, the hub said %d" % (path, _size(part), size))


def download(args):
    endpoint = (args.get("endpoint") or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    token = os.environ.get("HF_TOKEN") or None
    repo, revision = args["repo"], args.get("revision") or "main"
    storage = os.path.join(os.path.expanduser(args["cache"]), "models--" + repo.replace("/", "--"))
    commit, files = repo_files(endpoint, repo, revision, token)
    blobs = os.path.join(storage, "blobs")
    os.makedirs(blobs, exist_ok=True)
    os.makedirs(os.path.join(storage, "snapshots", commit), exist_ok=True)
    total = sum(size for _, size, _ in files)
    cached = sum(size for _, size, etag in files if _size(os.path.join(blobs, etag)) == size)
    partial = sum(max(0, _size(os.path.join(blobs, etag + ".incomplete"))) for _, _, etag in files)
    _emit("start", repo=repo, revision=revision, commit=commit, files=len(files), total=total,
          cached=cached, partial=partial)
    progress = _Progress(total, cached + partial)
    for path, size, etag in files:
        blob = os.path.join(blobs, etag)
        status = "cached"
        if _size(blob) != size:
            lock = open(blob + ".lock", "w")
            try:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # another pod or run fetches it into this (shared) cache: wait for it
                    had = max(0, _size(blob + ".incomplete"))
                    _emit("retry", file=path, error="another download of this file is running; waiting for it")
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if _size(blob) == size:
                        progress.done += size - had
                if _size(blob) != size:
                    url = "%s/%s/resolve/%s/%s" % (endpoint, repo, commit, quote(path))
                    _fetch(url, token, blob + ".incomplete", size, path, progress)
                    os.replace(blob + ".incomplete", blob)
                    status = "downloaded"
            finally:
                lock.close()
        _link(storage, commit, path, etag)
        _emit("file", file=path, size=size, status=status)
    progress.add("", 0, force=True)
    if revision != commit:
        os.makedirs(os.path.dirname(os.path.join(storage, "refs", revision)), exist_ok=True)
        with open(os.path.join(storage, "refs", revision), "w") as ref:
            ref.write(commit)
    snapshot = os.path.join(storage, "snapshots", commit)
    _emit("done", repo=repo, commit=commit, snapshot=snapshot, fetched=progress.fetched)
    return 0


def main(args):
    try:
        return download(args)
    except DownloadError as err:
        _emit("error", message=str(err))
        return 3
    except KeyboardInterrupt:
        _emit("error", message="interrupted; run again to resume")
        return 130


if __name__ == "__main__":  # python3 -S podside_download.py '{"repo": "org/name", "cache": "~/hub"}'
    sys.exit(main(json.loads(sys.argv[1])))
