"""SshTransport: run commands on a pod over ONE persistent asyncssh connection.

Why: one ``ssh`` process per command costs a TCP + key exchange + login (~100-300 ms); a
reused connection costs a channel (~4 ms). The connection opens on first use and is reused for
every command of the run; if it dropped between two commands it is reopened once,
transparently. Commands are argv lists joined with ``shlex.quote`` for the remote POSIX shell.

Safety:
  - Host keys are checked against ``known_hosts`` (default ``~/.ssh/known_hosts``). An unknown
    key is refused unless the pod opts in with ``accept_new_host_key: true`` (then it is recorded
    in that file); a changed key is always refused.
  - At most ``max_channels`` (5) channels are open at once per connection, and a channel-open
    failure ``ChannelOpenError`` code 2 is retried with a short backoff: stock sshd
    (``MaxSessions 10``) frees a session's slot slightly after the client sees its exit status,
    so 7 to 10 channels in flight fail to open now and then (at most 5: none in 500 runs).
  - Unreachable hosts and failed logins raise ``PodUnreachableError`` with a one-line message.
  - A command that exceeds its timeout is killed (its process group on the pod) and returns 124.

Identity: ``-i KEY`` (``HostSpec.key``) is used alone; without it asyncssh's defaults apply (the
SSH agent via ``SSH_AUTH_SOCK`` and ``~/.ssh/id_*``) and ``~/.ssh/config``. ``-J JUMP`` (comma
separated ``[user@]host[:port]`` hops) is tunnelled through, each hop's host key checked the same
way and ``-i KEY`` offered there too.

Timeouts: sshd refuses signal requests for root logins, so every command is started as
``echo gpumod:pid=$$; exec CMD``; on timeout the channel is closed and a second command kills
that process group on the pod (whatever it forked too; detached services live in their own).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from gpumod.errors import PodError, PodUnreachableError
from gpumod.ports import CommandResult
from gpumod.spec.hosts import HostSpec, parse_host, parse_jump


def _import_asyncssh() -> Any:
    """``import asyncssh``, without the ~80 ms it spends looking for liboqs on every start.

    asyncssh's post-quantum module asks ``ctypes.util.find_library`` for ``oqs`` and ``liboqs``,
    which on Linux runs ``ldconfig -p`` and then gcc and ld to search again. During the import,
    a name that is neither in the dynamic linker's cache (``/etc/ld.so.cache``) nor in a
    ``LD_LIBRARY_PATH`` directory is answered ``None`` at once (``dlopen`` could not load it
    either); any other name still goes to the real ``find_library``."""
    import ctypes.util

    real = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return real(name) if _linkable(name) else None

    ctypes.util.find_library = find_library
    try:
        import asyncssh
    finally:
        ctypes.util.find_library = real
    return asyncssh


def _linkable(name: str) -> bool:
    """Whether ``lib<name>.so`` may be found by the dynamic linker (True when unsure)."""
    soname = f"lib{name}.so".encode()
    try:
        with open("/etc/ld.so.cache", "rb") as f:
            if soname in f.read():
                return True
    except OSError:
        return True
    for directory in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        try:
            if any(entry.encode().startswith(soname) for entry in os.listdir(directory)):
                return True
        except OSError:
            continue
    return False


if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = _import_asyncssh()

__all__ = ["SshProcess", "SshTransport", "remote_command", "TIMEOUT_RETURNCODE"]

TIMEOUT_RETURNCODE = 124
MAX_CHANNELS = 5
OPEN_RETRY_DELAYS_S = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0)
KEEPALIVE_INTERVAL_S = 15.0
KEEPALIVE_COUNT_MAX = 4
CLOSE_GRACE_S = 5.0
PID_MARK = "gpumod:pid="
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def remote_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The command string sent to the remote shell: every argv item quoted, ``env K=V`` first.

    ``env`` is for plain settings (``PATH``...): it is visible in the remote process list while
    ``env`` starts, so secrets must travel on stdin instead."""
    if not argv:
        raise ValueError("empty argv")
    prefix: list[str] = []
    if env:
        for key, value in env.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            prefix.append(f"{key}={value}")
        prefix.insert(0, "env")
    return " ".join(shlex.quote(str(a)) for a in [*prefix, *argv])


def _hostport(host: str, port: int) -> str:
    """How known_hosts and ssh-keygen -R name a host."""
    return host if port == 22 else f"[{host}]:{port}"


class _HostKeyPolicy:
    """known_hosts checking for one connection attempt; remembers why it refused."""

    def __init__(self, path: Path, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new
        self.known = asyncssh.read_known_hosts(str(path)) if path.is_file() else asyncssh.import_known_hosts("")
        self.verdict: str | None = None  # "unknown" | "changed"
        self.key: asyncssh.SSHKey | None = None
        self.accepted: tuple[str, asyncssh.SSHKey] | None = None

    def validate(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called by asyncssh only for a key that known_hosts does not trust."""
        self.key = key
        trusted_keys, trusted_cas = self.known.match(host, addr, None if port == 22 else port)[:2]
        if trusted_keys or trusted_cas:
            self.verdict = "changed"
            return False
        if not self.accept_new:
            self.verdict = "unknown"
            return False
        self.accepted = (_hostport(host, port), key)
        return True

    def record_accepted(self) -> None:
        if self.accepted is None:
            return
        name, key = self.accepted
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)
        self.accepted = None

    def fingerprint(self) -> str:
        return f"{self.key.get_algorithm()} {self.key.get_fingerprint()}" if self.key else "?"


class _Client(asyncssh.SSHClient):
    def __init__(self, policy: _HostKeyPolicy) -> None:
        self.policy = policy

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self.policy.validate(host, addr, port, key)


class SshTransport:
    """``gpumod.ports.Transport`` over one lazily opened, reused asyncssh connection."""

    def __init__(
        self,
        host: HostSpec,
        *,
        pod: str | None = None,
        accept_new_host_key: bool = False,
        known_hosts: str | os.PathLike[str] | None = None,
        connect_timeout_s: float = 10.0,
        max_channels: int = MAX_CHANNELS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if host.kind != "ssh" or not host.host:
            raise ValueError(f"not an SSH host: {host}")
        self.host = host
        self.pod = pod or f"{host.user}@{host.host}"
        self.accept_new_host_key = accept_new_host_key
        self.known_hosts = Path(known_hosts or "~/.ssh/known_hosts").expanduser()
        self.connect_timeout_s = connect_timeout_s
        self.env = dict(env or {})
        self.hops = parse_jump(host.jump) if host.jump else []
        self._channels = asyncio.Semaphore(max_channels)
        self._connect_lock = asyncio.Lock()
        self._conns: list[asyncssh.SSHClientConnection] = []  # jump hops first, the pod last
        self.connects = 0  # how many times a connection to the pod was opened (tests, metrics)
        self.open_retries = 0  # channel opens refused with code 2 and retried

    @classmethod
    def from_host(cls, host: str, **options: Any) -> "SshTransport":
        """From a pod's ``host:`` string (``ssh://user@h:p`` or ``ssh [-p P] [-i K] [-J J] user@h``)."""
        return cls(parse_host(host), **options)

    @property
    def where(self) -> str:
        return f"{self.host.user}@{_hostport(self.host.host or '', self.host.port)}"

    # -- the Transport protocol ----------------------------------------------------------------

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        command = remote_command(argv, self.env)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self._channels:
            proc = await self._open(command, argv[0])
            pid = None
            try:
                if stdin:
                    proc.stdin.write(stdin)
                proc.stdin.write_eof()
                pid = await asyncio.wait_for(_read_pid(proc), _left(loop, deadline))
                out, err = await asyncio.wait_for(proc.communicate(), _left(loop, deadline))
            except asyncio.TimeoutError:
                await self._kill(proc, pid)
                return CommandResult(TIMEOUT_RETURNCODE, b"", f"{argv[0]}: timed out after {timeout:g} s\n".encode())
            except (asyncssh.Error, OSError) as exc:
                proc.close()
                raise self._lost(argv[0], exc) from None
        if proc.returncode is None:  # the channel closed without an exit status: connection gone
            raise self._lost(argv[0], None)
        return CommandResult(proc.returncode, bytes(out or b""), bytes(err or b""))

    async def open_process(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> "SshProcess":
        """A long-running remote process with pipes. It holds one of the connection's channel
        slots until it exits or is closed."""
        command = remote_command(argv, {**self.env, **(env or {})})
        await self._channels.acquire()
        try:
            proc = await self._open(command, argv[0])
            try:
                pid = await asyncio.wait_for(_read_pid(proc), self.connect_timeout_s + 5.0)
            except (asyncio.TimeoutError, asyncssh.Error, OSError) as exc:
                await self._kill(proc, None)
                raise self._lost(argv[0], exc) from None
        except BaseException:
            self._channels.release()
            raise
        return SshProcess(proc, pid, self)

    async def forward_local_port(self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1") -> int:
        """Listen on 127.0.0.1:``local_port`` here (0 = any free port) and carry each connection
        to ``remote_host:remote_port`` as seen from the pod, over the pod's connection (ssh -L).
        Returns the local port; the forward lives until the transport is closed."""
        conn = await self._connection()
        try:
            listener = await conn.forward_local_port("127.0.0.1", local_port, remote_host, remote_port)
        except asyncssh.Error as exc:
            raise self._lost(f"a forward of port {remote_port}", exc, started=False) from None
        return int(listener.get_port())

    async def wait_closed(self) -> None:
        """Return when the pod's connection (and with it every forward) has closed."""
        if self._conns:
            await self._conns[-1].wait_closed()

    async def close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in reversed(conns):
            conn.close()
        for conn in reversed(conns):
            try:
                await asyncio.wait_for(conn.wait_closed(), CLOSE_GRACE_S)
            except (asyncio.TimeoutError, asyncssh.Error, OSError):
                pass

    # -- connection ------------------------------------------------------------------------------

    def _alive(self) -> bool:
        return bool(self._conns) and not any(c.is_closed() for c in self._conns)

    async def _connection(self) -> asyncssh.SSHClientConnection:
        async with self._connect_lock:
            if not self._alive():
                await self.close()
                self._conns = await self._connect_all()
                self.connects += 1
            return self._conns[-1]

    async def _connect_all(self) -> list[asyncssh.SSHClientConnection]:
        conns: list[asyncssh.SSHClientConnection] = []
        try:
            for hop in self.hops:
                conns.append(
                    await self._connect(hop.host, hop.port, hop.user, self.host.key, conns[-1] if conns else None)
                )
            conns.append(
                await self._connect(self.host.host or "", self.host.port, self.host.user, self.host.key,
                                    conns[-1] if conns else None)
            )
        except BaseException:
            for conn in reversed(conns):
                conn.close()
            raise
        return conns

    async def _connect(
        self, host: str, port: int, user: str | None, key: str | None, tunnel: asyncssh.SSHClientConnection | None
    ) -> asyncssh.SSHClientConnection:
        where = f"{user + '@' if user else ''}{_hostport(host, port)}"
        via = " (through jump host)" if tunnel is not None else ""
        policy = _HostKeyPolicy(self.known_hosts, self.accept_new_host_key)
        options: dict[str, Any] = {
            "port": port,
            "known_hosts": policy.known,
            "client_factory": lambda: _Client(policy),
            "connect_timeout": self.connect_timeout_s,
            "keepalive_interval": KEEPALIVE_INTERVAL_S,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        }
        if user:
            options["username"] = user
        if key:
            options["client_keys"] = [os.path.expanduser(key)]
        if tunnel is not None:
            options["tunnel"] = tunnel
        try:
            conn = await asyncio.wait_for(asyncssh.connect(host, **options), self.connect_timeout_s + 2.0)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._host_key_error(host, port, policy, exc) from None
        except asyncssh.PermissionDenied:
            raise PodUnreachableError(
                self.pod,
                f"SSH login as {where}{via} was refused (no accepted key)",
                hint=f"check that {'the key ' + key if key else 'your SSH agent or ~/.ssh/id_* key'} "
                f"is in the authorized_keys of {user or 'that user'} on {host}",
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise PodUnreachableError(
                self.pod, f"no SSH answer from {where}{via} within {self.connect_timeout_s:g} s",
                hint="is the pod running, and is the address and port right?",
            ) from None
        except (asyncssh.KeyImportError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise PodError(
                self.pod, f"cannot use the identity file {key}: {exc}",
                hint="a passphrase-protected key must be loaded into ssh-agent (then drop -i)",
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise PodUnreachableError(
                self.pod, f"cannot reach {where}{via}: {reason}",
                hint=f"is the pod running, and does sshd listen on port {port}?",
            ) from None
        except asyncssh.Error as exc:
            raise PodUnreachableError(self.pod, f"SSH connection to {where}{via} failed: {exc.reason}") from None
        try:
            policy.record_accepted()
        except OSError as exc:
            conn.close()
            raise PodError(
                self.pod, f"cannot record the new host key of {where} in {self.known_hosts}: {exc}"
            ) from None
        return conn

    def _host_key_error(self, host: str, port: int, policy: _HostKeyPolicy, exc: Exception) -> PodError:
        name = _hostport(host, port)
        if policy.verdict == "changed":
            return PodError(
                self.pod,
                f"host key for {name} changed: possible MITM; now {policy.fingerprint()}. "
                f"If the machine was really reinstalled, remove the old key with "
                f"ssh-keygen -R {shlex.quote(name)} -f {shlex.quote(str(self.known_hosts))}",
            )
        if policy.verdict == "unknown":
            return PodError(
                self.pod,
                f"unknown host key for {name} ({policy.fingerprint()}), not in {self.known_hosts}; refused. "
                f"To trust it on first use set `accept_new_host_key: true` on pod {self.pod}",
                hint=f"or add it yourself after checking the fingerprint: "
                f"ssh-keyscan -p {port} {shlex.quote(host)} >> {shlex.quote(str(self.known_hosts))}",
            )
        return PodError(self.pod, f"host key of {name} refused: {exc}")

    # -- channels --------------------------------------------------------------------------------

    async def _open(self, command: str, what: str, *, track: bool = True) -> asyncssh.SSHClientProcess:
        """Open a session channel running ``command`` (``track``: prefixed by its PID line, see
        ``_read_pid``): retries code-2 refusals, reconnects once."""
        if track:
            command = f"echo {PID_MARK}$$; exec {command}"
        reconnected = False
        delays = list(OPEN_RETRY_DELAYS_S)
        while True:
            conn = await self._connection()
            try:
                return await conn.create_process(command, encoding=None)
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():
                    failure: Exception = exc
                elif exc.code == asyncssh.OPEN_CONNECT_FAILED and delays:
                    self.open_retries += 1
                    await asyncio.sleep(delays.pop(0))
                    continue
                else:
                    raise PodError(self.pod, f"{self.where} refused to run {what}: {exc.reason}") from None
            except (asyncssh.Error, OSError) as exc:
                failure = exc
            if reconnected:
                raise self._lost(what, failure, started=False)
            reconnected = True
            async with self._connect_lock:
                if self._conns and self._conns[-1] is conn:
                    await self.close()

    def _lost(self, what: str, exc: BaseException | None, *, started: bool = True) -> PodUnreachableError:
        detail = f": {getattr(exc, 'reason', None) or exc}" if exc else ""
        if not started:
            return PodUnreachableError(
                self.pod, f"SSH connection to {self.where} lost before running {what}{detail}",
                hint="is the pod still up? the next pass observes it again",
            )
        return PodUnreachableError(
            self.pod, f"SSH connection to {self.where} lost while running {what}{detail}",
            hint="the command may or may not have completed; the next pass observes the pod again",
        )

    async def _kill(self, proc: asyncssh.SSHClientProcess, pid: int | None) -> None:
        """Close the channel and SIGKILL the command's process group on the pod (sshd refuses
        signal requests for root logins, so a second command does it)."""
        proc.close()
        if not pid or not self._alive():
            return
        try:
            # the shell's builtin kill: procps' /bin/kill missed the group inside a PID namespace
            killer = await self._open(f"kill -s KILL -- -{pid} {pid}", "kill", track=False)
            killer.stdin.write_eof()
            await asyncio.wait_for(killer.communicate(), CLOSE_GRACE_S)
        except (asyncio.TimeoutError, asyncssh.Error, OSError, PodError):
            pass


class SshProcess:
    """A remote process with pipes (``gpumod.ports.PodProcess``); text lines out, bytes in."""

    def __init__(self, proc: asyncssh.SSHClientProcess, pid: int | None, transport: SshTransport) -> None:
        self._proc = proc
        self.pid = pid  # on the pod (the session leader: also its process group)
        self._transport: SshTransport | None = transport
        self._stdin_closed = False

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def readline(self) -> str:
        """The next line of stdout ('' at EOF, also when the connection is gone)."""
        try:
            line = await self._proc.stdout.readline()
        except (asyncssh.Error, OSError):
            return ""
        return bytes(line).decode("utf-8", "replace")

    async def read_stderr(self) -> bytes:
        """Everything the process wrote on stderr (waits for its EOF)."""
        try:
            return bytes(await self._proc.stderr.read())
        except (asyncssh.Error, OSError):
            return b""

    def write(self, data: bytes) -> None:
        if self._stdin_closed:
            raise BrokenPipeError("stdin of the remote process is closed")
        self._proc.stdin.write(data)

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """EOF on stdin, wait up to ``grace_s`` for the exit, then kill; frees the channel slot."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        try:
            if not self._stdin_closed:
                self._stdin_closed = True
                try:
                    self._proc.stdin.write_eof()
                except (asyncssh.Error, OSError):
                    pass
            try:
                await asyncio.wait_for(self._proc.wait_closed(), grace_s)
            except (asyncio.TimeoutError, asyncssh.Error, OSError):
                await transport._kill(self._proc, self.pid)
        finally:
            transport._channels.release()


async def _read_pid(proc: asyncssh.SSHClientProcess) -> int | None:
    """Consume stdout up to the PID line that ``_open`` prefixes (skipping what a chatty login
    shell printed before it); None if the command never started."""
    for _ in range(1000):
        line = bytes(await proc.stdout.readline())
        if not line:
            return None
        if line.startswith(PID_MARK.encode()):
            try:
                return int(line[len(PID_MARK):].strip())
            except ValueError:
                return None
    return None


def _left(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - loop.time())
