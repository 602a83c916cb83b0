"""pytest fixtures for real infrastructure in tests (registered by tests/conftest.py).

``sshd_factory`` starts private OpenSSH servers on loopback (``tests/infra/sshd.py``) and stops
each one by PID at teardown; ``sshd`` is one such server with stock ``MaxSessions 10``. Both skip
the test with the reason when this machine cannot run them (not root, no openssh-server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from infra.sshd import SshServer, sshd_unavailable_reason, start_sshd

_reason: list[str | None] = []


def _skip_unless_sshd() -> None:
    if not _reason:
        _reason.append(sshd_unavailable_reason())
    if _reason[0]:
        pytest.skip(f"real sshd unavailable: {_reason[0]}")


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SshServer]]:
    """``start(max_sessions=10, port=None, client_key=None) -> SshServer``; every server is stopped at teardown."""
    _skip_unless_sshd()
    servers: list[SshServer] = []

    def start(*, max_sessions: int = 10, port: int | None = None, client_key: Path | None = None) -> SshServer:
        directory = Path(tmp_path_factory.mktemp("sshd"))
        server = start_sshd(directory, port=port, max_sessions=max_sessions, client_key=client_key)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def sshd(sshd_factory: Callable[..., SshServer]) -> SshServer:
    """One private sshd on 127.0.0.1 (stock MaxSessions 10), known_hosts pre-filled."""
    return sshd_factory()
