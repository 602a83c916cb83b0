"""A private OpenSSH sshd on loopback: a real SSH "pod" for tests and benchmarks.

Why: the SSH transport, the pod agent over SSH and the per-pod lock must be tested against the
real OpenSSH server, not a mock. Each server runs
``/usr/sbin/sshd -D -e -f <cfg>`` on 127.0.0.1 in its own mount namespace (tmpfs ``/run`` for
``/run/sshd``, and an empty ``.bashrc`` bind-mounted over the user's, whose pyenv hook costs
~120 ms per command) and its own PID namespace with a private ``/proc``: sshd is the pod's PID 1,
so stopping it (by PID) ends every session and every process started on "the pod", like a reboot.
Host key, client key and ``authorized_keys`` are generated in the server's directory.

Usable without pytest (``benchmarks/ssh_overhead.py``): ``start_sshd(dir)`` / ``server.stop()``.
The pytest fixtures live in ``tests/infra/fixtures.py``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from testkit import free_port

SSHD = "/usr/sbin/sshd"
STARTUP_TIMEOUT_S = 5.0


def sshd_unavailable_reason() -> str | None:
    """Why a private sshd cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (a private mount + PID namespace for sshd; CI runs as root)"
    for tool in (SSHD, "ssh-keygen", "unshare", "mount"):
        if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool)):
            return f"{tool} is not installed (apt-get install -y openssh-server; .ci/run does)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return f"cannot create a mount namespace here: {probe.stderr.decode(errors='replace').strip()}"
    return None


def keygen(path: Path, comment: str = "gpumod-test") -> str:
    """An ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL,
    )
    path.chmod(0o600)
    return path.with_name(path.name + ".pub").read_text().strip()


def known_hosts_entry(host: str, port: int, public_key: str) -> str:
    """One known_hosts line as OpenSSH writes it (``[host]:port`` unless port 22), no comment."""
    name = host if port == 22 else f"[{host}]:{port}"
    kind, data = public_key.split()[:2]
    return f"{name} {kind} {data}"


@dataclass
class SshServer:
    """One running private sshd. ``pid`` is sshd's PID as seen from this machine."""

    directory: Path
    host: str
    port: int
    user: str
    client_key: Path
    host_public_key: str
    known_hosts: Path
    max_sessions: int
    pid: int = 0
    _launcher: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The pod ``host:`` string for this server."""
        return f"ssh://{self.user}@{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def config(self) -> Path:
        return self.directory / "sshd_config"

    def alive(self) -> bool:
        return self._launcher is not None and self._launcher.poll() is None

    def start(self) -> "SshServer":
        """(Re)start sshd with the same keys, config and port."""
        if self.alive():
            raise RuntimeError(f"sshd on port {self.port} is already running (pid {self.pid})")
        home = pwd.getpwnam(self.user).pw_dir
        bashrc = Path(home) / ".bashrc"
        empty = self.directory / "empty_bashrc"
        empty.write_text("")
        steps = [
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -m 0755 /run/sshd",
        ]
        if bashrc.is_file():
            steps.append(f"mount --bind {empty} {bashrc}")
        steps.append(f"exec {SSHD} -D -e -f {self.config}")
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self._launcher = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
                 "--mount-proc", "sh", "-c", " && ".join(steps)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self.pid = _wait_listening(self, offset)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop sshd by PID (ends the PID namespace: every session and process on the pod)."""
        launcher, self._launcher = self._launcher, None
        if launcher is None:
            return
        if launcher.poll() is None:
            _kill(self.pid or launcher.pid, signal.SIGTERM)
            try:
                launcher.wait(timeout=3)
            except subprocess.TimeoutExpired:
                if self.pid:
                    _kill(self.pid, signal.SIGKILL)
                _kill(launcher.pid, signal.SIGKILL)
                launcher.wait(timeout=5)
        self.pid = 0

    def restart(self) -> "SshServer":
        self.stop()
        return self.start()

    def ssh_argv(self, *command: str) -> list[str]:
        """The OpenSSH CLI command line that reaches this server (strict host key checking)."""
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.client_key), "-p", str(self.port),
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", f"{self.user}@{self.host}", *command,
        ]


def start_sshd(
    directory: Path,
    *,
    port: int | None = None,
    max_sessions: int = 10,
    user: str = "root",
    client_key: Path | None = None,
) -> SshServer:
    """Generate keys and config in ``directory`` (created) and start sshd on 127.0.0.1.
    ``client_key``: authorize this existing key pair instead of generating one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    host_public = keygen(directory / "host_ed25519", "gpumod-test-host")
    if client_key is None:
        client_key = directory / "client_key"
        client_public = keygen(client_key, "gpumod-test-client")
    else:
        client_public = Path(str(client_key) + ".pub").read_text().strip()
    authorized = directory / "authorized_keys"
    authorized.write_text(client_public + "\n")
    authorized.chmod(0o600)
    port = port or free_port()
    server = SshServer(
        directory=directory,
        host="127.0.0.1",
        port=port,
        user=user,
        client_key=Path(client_key),
        host_public_key=host_public,
        known_hosts=directory / "known_hosts",
        max_sessions=max_sessions,
    )
    server.known_hosts.write_text(known_hosts_entry(server.host, port, host_public) + "\n")
    server.known_hosts.chmod(0o600)
    server.config.write_text(
        "\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {directory / 'host_ed25519'}",
            f"PidFile {directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            f"MaxSessions {max_sessions}",
            "MaxStartups 100:30:200",
            "Subsystem sftp /usr/lib/openssh/sftp-server",
            "",
        ])
    )
    return server.start()


def _wait_listening(server: SshServer, offset: int) -> int:
    """Wait for "Server listening" in the log; return sshd's PID (the launcher's child)."""
    assert server._launcher is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    needle = f"Server listening on 127.0.0.1 port {server.port}".encode()
    while time.monotonic() < deadline:
        if server._launcher.poll() is not None:
            raise RuntimeError(f"sshd exited with {server._launcher.returncode}: {_log_tail(server, offset)}")
        with open(server.log, "rb") as f:
            f.seek(offset)
            if needle in f.read():
                child = _child_of(server._launcher.pid)
                if child:
                    return child
        time.sleep(0.005)
    raise RuntimeError(f"sshd did not listen on port {server.port} within {STARTUP_TIMEOUT_S} s: "
                       f"{_log_tail(server, offset)}")


def _child_of(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def _log_tail(server: SshServer, offset: int) -> str:
    try:
        with open(server.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace").strip()[-2000:]
    except OSError:
        return "(no log)"


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
