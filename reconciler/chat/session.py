"""Chat sessions on disk, so that ``gpumod prompt -c`` continues the last conversation.

One JSON file per session under ``$GPUMOD_HOME/sessions/`` (or ``~/.gpumod/sessions/``): the
service, its model, the working folder and the messages in OpenAI's chat format. The folder is
0700 and each file 0600 (a conversation may quote private files); a file is replaced atomically.
"The last session" is the newest file for the same service.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Session", "last_session", "sessions_dir"]


def sessions_dir() -> Path:
    home = Path(os.environ.get("GPUMOD_HOME") or Path.home() / ".gpumod").expanduser()
    return home / "sessions"


@dataclass
class Session:
    service: str
    model: str
    cwd: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    id: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8])

    @property
    def path(self) -> Path:
        return sessions_dir() / f"{self.id}.json"

    def save(self) -> Path:
        directory = sessions_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        body = {"id": self.id, "service": self.service, "model": self.model, "cwd": self.cwd, "messages": self.messages}
        tmp = directory / f".{self.id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=1)
        os.replace(tmp, self.path)
        return self.path

    @classmethod
    def load(cls, path: Path) -> Session:
        body = json.loads(path.read_text())
        return cls(
            service=body["service"], model=body.get("model", ""), cwd=body.get("cwd", ""),
            messages=list(body.get("messages") or []), id=body["id"],
        )


def last_session(service: str) -> Session | None:
    """The newest saved session with ``service``, or None."""
    directory = sessions_dir()
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        try:
            session = Session.load(path)
        except (OSError, ValueError, KeyError):
            continue
        if session.service == service:
            return session
    return None
