"""Model downloads (``gpumod.drivers.provision.download``): the pod-side fetcher against the local
hub, for real: the hub cache layout huggingface_hub itself reads, resume after a kill with no
byte fetched twice (checked on the hub's access log), a dropped connection, the token kept off
redirects, and a missing repo reported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gpumod.drivers.provision.download import DownloadEvent, download_argv, parse_event
from infra.hubserver import HubRepo, HubServer

hf = pytest.importorskip("huggingface_hub", reason="huggingface_hub is a dev extra: pip install -e '.[dev]'")

MiB = 1 << 20
BIG = "model-00001-of-00002.safetensors"
REPO = HubRepo.generate(
    "acme/tiny-model",
    {BIG: 3 * MiB, "model-00002-of-00002.safetensors": 1 * MiB, "nested/extra.bin": 70 * 1024},
    {"config.json": '{"architectures": ["TinyForCausalLM"]}\n'},
)


@pytest.fixture
def hub():
    with HubServer([REPO]) as server:
        yield server


def run(hub: HubServer, cache: Path, env: dict[str, str] | None = None, repo: str = REPO.repo_id):
    argv = download_argv(sys.executable, repo, str(cache), endpoint=hub.endpoint)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    events = [e for e in map(parse_event, result.stdout.splitlines()) if e is not None]
    return result.returncode, events


def test_a_download_writes_the_hub_cache_layout_huggingface_hub_reads(hub: HubServer, tmp_path: Path) -> None:
    code, events = run(hub, tmp_path / "hub")

    assert code == 0, events
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "done"
    assert events[0].fields["total"] == REPO.size and events[0].fields["commit"] == REPO.commit
    assert sorted(e.file for e in events if e.kind == "file") == sorted(f.path for f in REPO.files)
    folder = Path(hf.snapshot_download(REPO.repo_id, cache_dir=str(tmp_path / "hub"), local_files_only=True))
    assert folder == Path(events[-1].fields["snapshot"])
    for f in REPO.files:
        assert (folder / f.path).read_bytes() == f.data
        assert hub.bytes_sent(REPO.repo_id, f.path) == f.size
    online = hf.snapshot_download(REPO.repo_id, cache_dir=str(tmp_path / "hub"), endpoint=hub.endpoint)
    assert Path(online) == folder
    assert sum(r.bytes_sent for r in hub.log() if r.file) == REPO.size  # huggingface_hub fetched nothing


def test_a_second_run_fetches_nothing(hub: HubServer, tmp_path: Path) -> None:
    run(hub, tmp_path / "hub")
    code, events = run(hub, tmp_path / "hub")

    assert code == 0
    assert {e.fields["status"] for e in events if e.kind == "file"} == {"cached"}
    assert events[-1].fields["fetched"] == 0
    assert sum(r.bytes_sent for r in hub.log() if r.file) == REPO.size


def test_a_killed_download_resumes_where_it_stopped_and_no_byte_is_fetched_twice(
    hub: HubServer, tmp_path: Path
) -> None:
    release = hub.hold_after(REPO.repo_id, BIG, 1 * MiB)
    cache = tmp_path / "hub"
    argv = download_argv(sys.executable, REPO.repo_id, str(cache), endpoint=hub.endpoint)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blob = cache / "models--acme--tiny-model" / "blobs" / f"{REPO.file(BIG).sha256}.incomplete"
    try:
        assert hub.wait_bytes(REPO.repo_id, BIG, 1 * MiB)
        assert _wait(lambda: blob.exists() and blob.stat().st_size == 1 * MiB), "the partial file holds what was sent"
    finally:
        proc.send_signal(signal.SIGKILL)  # like Ctrl+C or a dropped SSH session
        proc.wait(timeout=10)
        release.set()

    code, events = run(hub, cache)

    assert code == 0, events
    assert events[0].fields["partial"] == 1 * MiB
    gets = [r for r in hub.log() if r.method == "GET" and r.file == f"{REPO.repo_id}/{BIG}"]
    assert [(g.range, g.bytes_sent) for g in gets] == [(None, 1 * MiB), (f"bytes={1 * MiB}-", 2 * MiB)]
    for f in REPO.files:
        assert hub.bytes_sent(REPO.repo_id, f.path) == f.size, f"{f.path}: bytes fetched twice"
    snapshot = Path(events[-1].fields["snapshot"])
    assert (snapshot / BIG).read_bytes() == REPO.file(BIG).data


def test_a_dropped_connection_is_resumed_in_the_same_run(hub: HubServer, tmp_path: Path) -> None:
    hub.drop_after(REPO.repo_id, BIG, 1 * MiB)
    code, events = run(hub, tmp_path / "hub")

    assert code == 0, events
    assert [e.file for e in events if e.kind == "retry"] == [BIG]
    assert hub.bytes_sent(REPO.repo_id, BIG) == REPO.file(BIG).size


def test_the_token_reaches_the_hub_but_not_the_cdn(hub: HubServer, tmp_path: Path) -> None:
    code, _ = run(hub, tmp_path / "hub", env={"HF_TOKEN": "hf_secret_value"})

    assert code == 0
    api_and_resolve = [r for r in hub.log() if not r.path.startswith("/cdn/")]
    cdn = [r for r in hub.log() if r.path.startswith("/cdn/")]
    assert api_and_resolve and all(r.auth for r in api_and_resolve)
    assert cdn and not any(r.auth for r in cdn)
    assert "hf_secret_value" not in " ".join(download_argv(sys.executable, REPO.repo_id, "/x"))


def test_a_missing_repo_is_an_error_event_naming_it(hub: HubServer, tmp_path: Path) -> None:
    code, events = run(hub, tmp_path / "hub", repo="acme/nope")

    assert code == 3
    assert [e.kind for e in events] == ["error"]
    assert events[0].message == "acme/nope@main: hub answered 404 RepoNotFound"


def test_events_parse_and_stray_lines_are_skipped() -> None:
    event = parse_event('{"event": "progress", "file": "a", "done": 250, "total": 1000, "rate": 50}')
    assert event == DownloadEvent("progress", 250, 1000, 50, "a", "", {"file": "a", "done": 250, "total": 1000,
                                                                       "rate": 50})
    assert event.eta_s == 15
    assert parse_event("Warning: something") is None
    assert parse_event('{"event": "launch-missiles"}') is None
    assert parse_event("[1, 2]") is None


def _wait(predicate, timeout: float = 10) -> bool:
    from testkit import wait_until

    return wait_until(predicate, timeout)


def test_two_downloads_into_one_shared_cache_wait_for_each_other_and_fetch_once(
    hub: HubServer, tmp_path: Path
) -> None:
    """Pods sharing a model cache (an NFS models_path) download the same repo at once: the second
    waits for the file the first is fetching instead of failing, and no byte is fetched twice."""
    release = hub.hold_after(REPO.repo_id, BIG, 1 * MiB)
    cache = tmp_path / "hub"
    argv = download_argv(sys.executable, REPO.repo_id, str(cache), endpoint=hub.endpoint)
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.wait_bytes(REPO.repo_id, BIG, 1 * MiB)
        second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert _wait(lambda: any(r.method == "GET" and "/api/models/" in r.path for r in hub.log()[1:]))
    finally:
        release.set()
    out1, err1 = first.communicate(timeout=60)
    out2, _ = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (err1, out2)
    waited = [e for e in map(parse_event, out2.splitlines()) if e is not None and e.kind == "retry"]
    assert waited and "waiting" in waited[0].fields["error"]
    for f in REPO.files:
        assert hub.bytes_sent(REPO.repo_id, f.path) == f.size, f"{f.path}: bytes fetched twice"
