"""A pod's ``host:``: where it is (this machine, the simulated GPU, or an SSH host), parsed in
one place for the spec checks, the wiring and the SSH transport. Pure.

Accepted: ``local``, ``sim``, ``ssh://user@host[:port]`` and the familiar
``ssh [-p PORT] [-i KEY] [-J JUMP] user@host`` (``-J``: ``[user@]host[:port]`` hops, comma
separated, read by ``parse_jump`` when the transport connects).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

__all__ = ["HOST_FORMS", "HostSpec", "Hop", "parse_host", "parse_jump"]

HOST_FORMS = "local, sim, ssh://user@host[:port] or 'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'"
_SSH_URL = re.compile(r"^ssh://(?P<user>[^@/\s:]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/\s:\[\]]+)(?::(?P<port>\d+))?/?$")
_USER_HOST = re.compile(r"^(?P<user>[^@\s:]+)@(?P<host>[^@\s:/]+)$")
_JUMP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]]+)(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class HostSpec:
    """Where a pod is: this machine, the simulated GPU, or an SSH host."""

    kind: Literal["local", "sim", "ssh"]
    user: str | None = None
    host: str | None = None
    port: int = 22
    key: str | None = None
    jump: str | None = None


def parse_host(host: str) -> HostSpec:
    """Parse a pod's ``host``; ValueError (with the accepted forms) when it is none of them."""
    text = host.strip()
    if text in ("local", "sim"):
        return HostSpec(kind=text)  # type: ignore[arg-type]
    if text.startswith("ssh://"):
        m = _SSH_URL.match(text)
        if not m:
            raise ValueError(f"host {host!r} is not ssh://user@host[:port]")
        return HostSpec("ssh", user=m["user"], host=m["host"].strip("[]"), port=_port(m["port"], host))
    if text.split(" ", 1)[0] == "ssh":
        return _parse_ssh_command(host, text)
    raise ValueError(f"host {host!r} is not one of: {HOST_FORMS}")


def _parse_ssh_command(host: str, text: str) -> HostSpec:
    try:
        words = shlex.split(text)[1:]
    except ValueError as err:
        raise ValueError(f"host {host!r}: {err}") from None
    options: dict[str, str] = {}
    target = None
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-p", "-i", "-J"):
            if i + 1 >= len(words):
                raise ValueError(f"host {host!r}: {word} needs a value")
            if word in options:
                raise ValueError(f"host {host!r}: {word} is given twice")
            options[word] = words[i + 1]
            i += 2
        elif word.startswith("-"):
            raise ValueError(f"host {host!r}: option {word} is not supported; use -p, -i or -J (or ~/.ssh/config)")
        elif target is None:
            target = word
            i += 1
        else:
            raise ValueError(f"host {host!r}: unexpected {word!r} after {target!r}")
    m = _USER_HOST.match(target or "")
    if not m:
        raise ValueError(f"host {host!r} names no user@host")
    return HostSpec(
        "ssh",
        user=m["user"],
        host=m["host"],
        port=_port(options.get("-p"), host),
        key=options.get("-i"),
        jump=options.get("-J"),
    )


def _port(text: str | None, host: str) -> int:
    if text is None:
        return 22
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"host {host!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class Hop:
    user: str | None
    host: str
    port: int


def parse_jump(jump: str) -> list[Hop]:
    """``-J`` value -> hops in connection order; ValueError with the accepted form."""
    hops = []
    for part in jump.split(","):
        m = _JUMP.match(part.strip().removeprefix("ssh://"))
        port = int(m["port"]) if m and m["port"] else 22
        if not m or not 1 <= port <= 65535:
            raise ValueError(f"jump host {part!r} is not [user@]host[:port]")
        hops.append(Hop(m["user"], m["host"].strip("[]"), port))
    return hops
