"""Disk feasibility of a model download, like VRAM feasibility of a start: pure, with the numbers.

``download_need`` compares what a repo's file list (from the hub: ``HfApi().model_info(...,
files_metadata=True)`` siblings, or the tree listing) still needs against the free space on the
pod's ``models_path``. Files already complete in the cached snapshot of that revision are not
counted. Partial ``.incomplete`` blobs are counted in full (conservative: gpumod's own fetcher,
``podside_download.py``, resumes them, but huggingface_hub 2.x never reuses a killed process's
partial file, and a partial file already holds its disk space anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from gpumod.drivers.provision.facts import SetupFacts

__all__ = ["DownloadNeed", "download_need", "human_bytes"]


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


@dataclass(frozen=True)
class DownloadNeed:
    repo: str
    revision: str  # as asked (default main)
    total_bytes: int  # the whole repo (the files asked for)
    cached_bytes: int  # complete in the cache at that revision
    fetch_bytes: int  # still to download
    files_to_fetch: tuple[str, ...]
    free_bytes: int | None  # on the disk of models_path / the HF cache; None = unknown
    disk_path: str
    keep_free_bytes: int = 0

    @property
    def cached(self) -> bool:
        """Nothing left to fetch: no download step."""
        return not self.files_to_fetch

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.fetch_bytes + self.keep_free_bytes <= self.free_bytes

    def refusal(self) -> str:
        """The one-line refusal when it does not fit ("" when it does)."""
        if self.fits:
            return ""
        keep = f" (+{human_bytes(self.keep_free_bytes)} kept free)" if self.keep_free_bytes else ""
        return (
            f"{self.repo}@{self.revision} needs {human_bytes(self.fetch_bytes)}{keep} more on {self.disk_path}, "
            f"which has {human_bytes(self.free_bytes)} free (repo {human_bytes(self.total_bytes)}, "
            f"{human_bytes(self.cached_bytes)} already cached); free space or point models_path at a larger disk"
        )


def download_need(
    repo: str,
    files: Iterable[tuple[str, int]],
    facts: SetupFacts,
    *,
    revision: str | None = None,
    keep_free_bytes: int = 0,
) -> DownloadNeed:
    """Bytes to fetch for REPO's FILES ``(path, size)`` at REVISION, against the pod's free disk."""
    wanted = dict(files)
    cached_repo = facts.cached_repo(repo)
    snapshot = cached_repo.snapshot(revision) if cached_repo else None
    have = snapshot.file_sizes() if snapshot else {}
    missing = sorted(path for path, size in wanted.items() if have.get(path) != size)
    fetch = sum(wanted[p] for p in missing)
    total = sum(wanted.values())
    return DownloadNeed(
        repo=repo,
        revision=revision or "main",
        total_bytes=total,
        cached_bytes=total - fetch,
        fetch_bytes=fetch,
        files_to_fetch=tuple(missing),
        free_bytes=facts.free_bytes,
        disk_path=facts.disk_path,
        keep_free_bytes=keep_free_bytes,
    )
