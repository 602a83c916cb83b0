"""A model download step: the argv that runs the pod-side fetcher, and its events parsed.

The fetcher (``podside_download.py``, stdlib only) resumes partial files with HTTP Range and writes
the hub cache layout; see its docstring for why it is not ``snapshot_download``. It prints one
JSON event per line; ``parse_event`` turns each into a ``DownloadEvent`` the CLI renders as a
progress bar (bytes, rate, ETA) or passes on as JSON with ``-o json``. ``HF_TOKEN`` goes in the
step's environment (a secret the executor sets), never in this argv.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DownloadEvent", "download_argv", "download_script", "parse_event"]

_PODSIDE = Path(__file__).with_name("podside_download.py")
_FUTURE = "from __future__ import annotations"
KINDS = ("start", "progress", "retry", "file", "done", "error")


def download_script() -> str:
    lines = [ln for ln in _PODSIDE.read_text().splitlines() if ln.strip() != _FUTURE]
    body = "\n".join(lines).split('\nif __name__ == "__main__":', 1)[0]
    return body + "\nsys.exit(main(json.loads(sys.argv[1])))\n"


def download_argv(python: str, repo: str, cache: str, *, revision: str | None = None,
                  endpoint: str | None = None) -> list[str]:
    """``python -S -u -c SCRIPT ARGS``; endpoint None = the pod's $HF_ENDPOINT or huggingface.co."""
    args = {"repo": repo, "revision": revision or "main", "cache": cache, "endpoint": endpoint}
    return [python, "-S", "-u", "-c", download_script(), json.dumps(args, sort_keys=True)]


@dataclass(frozen=True)
class DownloadEvent:
    kind: str  # start | progress | retry | file | done | error
    done: int = 0  # bytes present so far (cached + partial + fetched)
    total: int = 0
    rate: int = 0  # bytes/s fetched by this run
    file: str = ""
    message: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def eta_s(self) -> float | None:
        if self.kind != "progress" or self.rate <= 0:
            return None
        return max(0, self.total - self.done) / self.rate


def parse_event(line: str) -> DownloadEvent | None:
    """One output line → an event; None for anything else (a stray warning line)."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("event") not in KINDS:
        return None
    return DownloadEvent(
        kind=raw["event"], done=int(raw.get("done", 0)), total=int(raw.get("total", 0)),
        rate=int(raw.get("rate", 0)), file=str(raw.get("file", "")), message=str(raw.get("message", "")),
        fields={k: v for k, v in raw.items() if k != "event"},
    )
