"""The local hub speaks what the real ``huggingface_hub`` client needs, and its access log tells
the truth about the bytes it sent (the resume tests of issue 9 stand on that log).

Real parts: the installed huggingface_hub against the server over loopback HTTP; a downloader
process killed mid-file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .hubserver import HubRepo, HubServer

hf = pytest.importorskip("huggingface_hub", reason="huggingface_hub is a dev extra: pip install -e '.[dev]'")
from huggingface_hub import constants as hf_constants  # noqa: E402
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError  # noqa: E402

MiB = 1 << 20
REPO = HubRepo.generate(
    "acme/tiny-model",
    {"model-00001-of-00002.safetensors": 3 * MiB, "model-00002-of-00002.safetensors": 2 * MiB},
    {"config.json": '{"architectures": ["TinyForCausalLM"]}\n', "tokenizer.json": "{}\n"},
)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    with HubServer([REPO]) as server:
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        yield server


def _snapshot(hub: HubServer, cache: Path, **kw) -> Path:
    return Path(hf.snapshot_download(REPO.repo_id, cache_dir=str(cache), endpoint=hub.endpoint, **kw))


def _gets(hub: HubServer, path: str) -> list:
    return [r for r in hub.log() if r.method == "GET" and r.file == f"{REPO.repo_id}/{path}"]


def test_snapshot_download_fetches_every_file_once_with_the_right_bytes(hub: HubServer, tmp_path: Path) -> None:
    folder = _snapshot(hub, tmp_path / "cache")

    assert folder.name == REPO.commit
    assert folder.parent.parent.name == "models--acme--tiny-model"
    for f in REPO.files:
        assert (folder / f.path).read_bytes() == f.data
        assert hub.bytes_sent(REPO.repo_id, f.path) == f.size, f.path
    heads = [r for r in hub.log() if r.method == "HEAD"]
    assert {r.status for r in heads} == {200, 302}  # small files direct, LFS files redirected to the CDN


def test_a_second_snapshot_download_fetches_no_file_bytes(hub: HubServer, tmp_path: Path) -> None:
    _snapshot(hub, tmp_path / "cache")
    before = sum(r.bytes_sent for r in hub.log())
    _snapshot(hub, tmp_path / "cache")

    assert sum(r.bytes_sent for r in hub.log() if r.file) == sum(f.size for f in REPO.files)
    assert sum(r.bytes_sent for r in hub.log()) == before


def test_model_info_lists_siblings_with_sizes_and_lfs(hub: HubServer) -> None:
    info = hf.HfApi(endpoint=hub.endpoint).model_info(REPO.repo_id, files_metadata=True)

    assert info.sha == REPO.commit
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes == {f.path: f.size for f in REPO.files}
    lfs = {s.rfilename for s in info.siblings if s.lfs is not None}
    assert lfs == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


def test_hf_hub_download_of_one_file_at_a_commit(hub: HubServer, tmp_path: Path) -> None:
    path = hf.hf_hub_download(REPO.repo_id, "config.json", revision=REPO.commit, cache_dir=str(tmp_path),
                              endpoint=hub.endpoint)

    assert Path(path).read_bytes() == REPO.file("config.json").data
    assert [r.file for r in hub.log() if r.method == "GET"] == [f"{REPO.repo_id}/config.json"]


def test_unknown_repo_and_revision_are_the_hub_errors(hub: HubServer, tmp_path: Path) -> None:
    api = hf.HfApi(endpoint=hub.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO.repo_id, revision="v9")


def test_a_dropped_connection_resumes_with_range_and_no_byte_is_sent_twice(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # huggingface_hub writes in DOWNLOAD_CHUNK_SIZE pieces (10 MiB in 2.4.0) and resumes from the
    # last piece it wrote; with 64 KiB pieces a drop at 1 MiB resumes exactly there.
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    name = "model-00001-of-00002.safetensors"
    hub.drop_after(REPO.repo_id, name, 1 * MiB)

    folder = _snapshot(hub, tmp_path / "cache")

    assert (folder / name).read_bytes() == REPO.file(name).data
    gets = _gets(hub, name)
    assert [(g.range, g.status, g.bytes_sent) for g in gets] == [
        (None, 200, 1 * MiB),
        (f"bytes={1 * MiB}-", 206, 2 * MiB),
    ]
    assert hub.bytes_sent(REPO.repo_id, name) == REPO.file(name).size


_DOWNLOADER = textwrap.dedent("""
    import sys
    from huggingface_hub import snapshot_download
    snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])
""")


def test_a_killed_download_keeps_finished_files_and_a_rerun_completes(hub: HubServer, tmp_path: Path) -> None:
    big = "model-00001-of-00002.safetensors"
    release = hub.hold_after(REPO.repo_id, big, 1 * MiB)
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _DOWNLOADER, REPO.repo_id, str(cache), hub.endpoint],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert hub.wait_bytes(REPO.repo_id, big, 1 * MiB)
        others = [f for f in REPO.files if f.path != big]
        for f in others:
            assert hub.wait_bytes(REPO.repo_id, f.path, f.size), f.path
        snapshot = cache / "models--acme--tiny-model" / "snapshots" / REPO.commit
        for f in others:  # the finished files are in place before the kill
            assert _wait_file(snapshot / f.path), f.path
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        release.set()

    _snapshot(hub, cache)

    for f in REPO.files:
        assert (snapshot / f.path).read_bytes() == f.data
    for f in others:
        assert hub.bytes_sent(REPO.repo_id, f.path) == f.size, f"{f.path} fetched twice"


def _wait_file(path: Path, timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False
