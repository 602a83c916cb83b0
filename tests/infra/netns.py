"""Network-namespace "pods" for tests and benchmarks: one private bridge, N netns, one sshd each.

Why: issue 3 needs several SSH-reachable machines on one host (fleets in parallel, losing one pod
mid-apply). This makes a tested recipe importable: a bridge with a random
name and a /24 that clashes with nothing on the host, one network namespace per pod, and in each a
sshd that is PID 1 of its own uts/pid/mount namespace. Killing that sshd kills every process of
the pod (the kernel SIGKILLs a PID namespace when its init dies), which is how tests lose a pod.

The pods share the host filesystem (so the venv works inside), but get a private /run, their own
hostname and /proc, and an empty ~/.bashrc bind-mounted over root's (root's pyenv .bashrc would cost
~120 ms per ssh command). No pytest import here: benchmarks use this module too.

Timings on the 2-core dev VM: bridge + 3 pods 0.22 s, + 20 pods 1.7 s; teardown of 20 pods 0.7 s.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import pwd
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
_LIVE: set[PodNetwork] = set()


class PodInfraError(RuntimeError):
    """A pod could not be created or did not come up in time."""


@dataclass(frozen=True)
class SshKeys:
    """The client key every pod accepts, and the known_hosts file listing every pod's host key."""

    client_key: Path
    authorized_keys: Path
    known_hosts: Path


@dataclass(frozen=True)
class NetnsPod:
    """One pod: `ssh -i keys.client_key root@ip` reaches a shell whose hostname is `name`."""

    name: str  # netns name == hostname inside the pod
    ip: str
    port: int
    sshd_pid: int  # host PID of the pod's sshd (PID 1 inside the pod)
    sshd_start: int  # its start time (field 22 of /proc/PID/stat), guards against PID reuse
    host_key_line: str  # known_hosts line: "10.x.y.z ssh-ed25519 AAAA..."
    dir: Path  # sshd_config, host key, sshd.log


# ---------------------------------------------------------------- small pure-ish helpers


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a PID from /proc/PID/stat, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def pid_alive(pid: int, start: int | None = None) -> bool:
    """True if PID runs (not a zombie) and, when given, still has that start time."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[1] == start


def wait_pid_gone(pid: int, start: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def children(pid: int) -> list[int]:
    """Direct children of PID (from /proc/PID/task/PID/children, else a /proc scan)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                raw = (d / "stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
                out.append(int(d.name))
    return out


def wait_child_exec(parent: int, comm: str, timeout: float) -> int:
    """PID of PARENT's child once it has exec'd COMM (e.g. unshare's forked child -> sshd)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children(parent):
            try:
                if Path(f"/proc/{c}/comm").read_text().strip() == comm:
                    return c
            except OSError:
                continue
        if not pid_alive(parent):
            break
        time.sleep(0.005)
    raise PodInfraError(f"no child {comm!r} of PID {parent} within {timeout}s")


def run(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout, stdin=subprocess.DEVNULL)


def host_addresses() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, network) of every IPv4 address in the host namespace."""
    out = []
    for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            out.append((parts[1], ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network))
    return out


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host namespace has an address or a route in."""
    nets = [net for _, net in host_addresses()]
    for line in run("ip", "-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit", "throw"):
            word = line.split()[1]
        if word == "default":
            continue
        try:
            nets.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    return nets


def pick_subnet(taken: list[ipaddress.IPv4Network], rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.2xx.yy.0/24 (xx in 00..49) overlapping nothing in TAKEN (pure)."""
    rng = rng or random.Random()
    for _ in range(2000):
        net = ipaddress.IPv4Network(f"10.{rng.randint(200, 249)}.{rng.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise PodInfraError("no free 10.2xx.yy.0/24 subnet")


def keygen(path: Path, comment: str = "gpumod-test") -> Path:
    """An unencrypted ed25519 key pair at PATH / PATH.pub (mode 0600)."""
    if not path.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    path.chmod(0o600)
    return path


def known_hosts_line(ip: str, port: int, pubkey_file: Path) -> str:
    kind, b64 = pubkey_file.read_text().split()[:2]
    host = ip if port == 22 else f"[{ip}]:{port}"
    return f"{host} {kind} {b64}"


def wait_ssh_banner(ip: str, port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Block until IP:PORT answers with an SSH banner; ALIVE() false aborts early."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = e
        if alive is not None and not alive():
            raise PodInfraError(f"ssh server for {ip}:{port} died while starting")
        time.sleep(0.02)
    raise PodInfraError(f"no SSH banner from {ip}:{port} within {timeout}s ({last})")


def ssh_argv(keys: SshKeys, ip: str, command: str, port: int = 22, user: str = "root") -> list[str]:
    """An OpenSSH client command line for a pod: our key, our known_hosts (checked), no user config."""
    return [
        "ssh", "-F", "/dev/null", "-i", str(keys.client_key), "-p", str(port),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={keys.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"{user}@{ip}", command,
    ]


def ssh_run(keys: SshKeys, ip: str, command: str, *, port: int = 22, timeout: float = 30,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run COMMAND on a pod with the OpenSSH client (fine for setup/checks; gpumod uses asyncssh)."""
    return run(*ssh_argv(keys, ip, command, port), check=check, timeout=timeout)


@functools.lru_cache(maxsize=1)
def netns_unavailable_reason() -> str | None:
    """Why netns pods cannot run here (None when they can). Probes in a throw-away netns."""
    if os.geteuid() != 0:
        return "netns pods need root (ip netns, unshare --pid --mount, bridges)"
    for tool in ("ip", "unshare", "ssh-keygen", "ssh"):
        if shutil.which(tool) is None:
            return f"netns pods need `{tool}` (apt-get install iproute2 util-linux openssh-client)"
    if not os.access(SSHD, os.X_OK):
        return f"netns pods need {SSHD} (apt-get install openssh-server)"
    probe = (
        "ip link add gpchkbr type bridge && ip link add gpchka type veth peer name gpchkb"
        " && mount -t tmpfs tmpfs /run && hostname gpchk"
    )
    try:
        r = run(
            "unshare", "--net", "--uts", "--pid", "--fork", "--mount", "--propagation", "private",
            "--mount-proc", "sh", "-c", probe, check=False, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot create namespaces: {e}"
    if r.returncode != 0:
        return f"cannot create net/pid/mount namespaces with a bridge and veth: {r.stderr.strip()}"
    return None


# ---------------------------------------------------------------- the network


class PodNetwork:
    """A bridge gpbr<token> with the host at .1, and pods gpod<token>-<i> at .(10+i).

    Use as a context manager or call teardown(); teardown is idempotent, robust to partial
    creation, and also registered with atexit as a last resort.
    """

    def __init__(self, workdir: Path, keys: SshKeys | None = None, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(2)
        self.bridge = f"gpbr{self.token}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        self.keys = keys or self._make_keys()
        self.pods: list[NetnsPod] = []
        self.netns: list[str] = []  # every namespace we created (pods and bare ones)
        self._veths: list[str] = []  # host ends; deleting them now beats the kernel's lazy netns cleanup
        self._launchers: dict[str, subprocess.Popen[bytes]] = {}
        self._index = 0
        self._bridge_made = False
        self._torn_down = False
        _LIVE.add(self)
        try:
            self.subnet = self._make_bridge()
        except BaseException:
            self.teardown()
            raise
        self.host_ip = str(self.subnet.network_address + 1)
        self.empty_bashrc = self.workdir / "empty_bashrc"
        self.empty_bashrc.touch()

    # -- creation

    def _make_keys(self) -> SshKeys:
        key = keygen(self.workdir / "client_key")
        ak = self.workdir / "authorized_keys"
        ak.write_text(Path(f"{key}.pub").read_text())
        ak.chmod(0o600)
        return SshKeys(client_key=key, authorized_keys=ak, known_hosts=self.workdir / "known_hosts")

    def _make_bridge(self) -> ipaddress.IPv4Network:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_made = True
        for _ in range(20):
            subnet = pick_subnet(host_networks())
            run("ip", "addr", "add", f"{subnet.network_address + 1}/24", "dev", self.bridge)
            # another run may have claimed the same /24 at the same moment: re-check, else retry
            if not any(dev != self.bridge and net.overlaps(subnet) for dev, net in host_addresses()):
                run("ip", "link", "set", self.bridge, "up")
                return subnet
            run("ip", "addr", "flush", "dev", self.bridge)
        raise PodInfraError("could not claim a free /24 for the pod bridge")

    def add_netns(self) -> tuple[str, str]:
        """A bare namespace on the bridge (lo + eth0 up, nothing running): (name, ip)."""
        self._index += 1
        i = self._index
        name, veth = f"gpod{self.token}-{i}", f"gv{self.token}-{i}"
        ip = str(self.subnet.network_address + 10 + i)
        run("ip", "netns", "add", name)
        self.netns.append(name)
        self._veths.append(veth)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        return name, ip

    def remove_netns(self, name: str) -> None:
        """Delete one namespace (and its veth) now rather than at teardown; idempotent."""
        veth = "gv" + name.removeprefix("gpod")
        if veth in self._veths:
            run("ip", "link", "del", veth, check=False)
            self._veths.remove(veth)
        if name in self.netns:
            run("ip", "netns", "del", name, check=False)
            self.netns.remove(name)

    def add_known_host(self, line: str) -> None:
        with open(self.keys.known_hosts, "a") as f:
            f.write(line + "\n")

    def add_pod(self, timeout: float = 10) -> NetnsPod:
        """A new netns on the bridge with its own sshd as PID 1 of fresh uts/pid/mount namespaces."""
        name, ip = self.add_netns()
        d = self.workdir / name
        d.mkdir(mode=0o700)
        hostkey = keygen(d / "host_ed25519", comment=name)
        pod = self._boot(name, ip, d, hostkey, timeout)
        self.add_known_host(pod.host_key_line)
        self.pods.append(pod)
        return pod

    def restart_pod(self, pod: NetnsPod, timeout: float = 10) -> NetnsPod:
        """Boot a killed pod again: same netns, IP and host key, a fresh sshd (and nothing else)."""
        old = self._launchers.get(pod.name)
        if old is not None:
            try:
                old.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise PodInfraError(f"pod {pod.name} is still running; kill its sshd first") from None
        new = self._boot(pod.name, pod.ip, pod.dir, pod.dir / "host_ed25519", timeout)
        self.pods = [new if p.name == pod.name else p for p in self.pods]
        return new

    def _boot(self, name: str, ip: str, d: Path, hostkey: Path, timeout: float) -> NetnsPod:
        cfg = d / "sshd_config"
        cfg.write_text(
            f"Port 22\nListenAddress 0.0.0.0\nHostKey {hostkey}\nPidFile /run/sshd.pid\n"
            f"AuthorizedKeysFile {self.keys.authorized_keys}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "MaxSessions 50\nMaxStartups 200:30:400\n"
            f"Subsystem sftp {SFTP_SERVER}\n"
        )
        bashrc = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"
        q = shlex.quote
        inner = (
            f"hostname {q(name)} && mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd"
            f" && {{ [ ! -e {q(str(bashrc))} ] || mount --bind {q(str(self.empty_bashrc))} {q(str(bashrc))}; }}"
            f" && exec {SSHD} -D -e -f {q(str(cfg))}"
        )
        with open(d / "sshd.log", "wb") as log:
            launcher = subprocess.Popen(
                ["ip", "netns", "exec", name, "unshare", "--uts", "--pid", "--fork", "--mount",
                 "--propagation", "private", "--mount-proc", "sh", "-c", inner],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._launchers[name] = launcher
        try:
            pid = wait_child_exec(launcher.pid, "sshd", timeout)
        except PodInfraError as e:
            raise PodInfraError(f"{e}; sshd.log: {(d / 'sshd.log').read_text()[-500:]}") from None
        start = proc_stat(pid)[1]  # type: ignore[index]
        wait_ssh_banner(ip, 22, timeout, alive=lambda: pid_alive(pid, start))
        return NetnsPod(name=name, ip=ip, port=22, sshd_pid=pid, sshd_start=start,
                        host_key_line=known_hosts_line(ip, 22, Path(f"{hostkey}.pub")), dir=d)

    # -- teardown

    def teardown(self) -> list[str]:
        """Kill every pod, delete every netns and the bridge. Returns the problems met (if any)."""
        if self._torn_down:
            return []
        errors: list[str] = []
        for pod in self.pods:
            try:
                kill_pod_sshd(pod)
            except Exception as e:  # keep going: the rest must still be removed
                errors.append(f"kill {pod.name}: {e}")
        for name, launcher in self._launchers.items():
            try:
                launcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                launcher.kill()
                try:
                    launcher.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    errors.append(f"launcher of {name} (PID {launcher.pid}) did not exit")
        for veth in self._veths:
            run("ip", "link", "del", veth, check=False)  # fails harmlessly if it never got made
        for name in self.netns:
            r = run("ip", "netns", "del", name, check=False)
            if r.returncode != 0 and name in run("ip", "netns", "list").stdout.split():
                errors.append(f"ip netns del {name}: {r.stderr.strip()}")
        if self._bridge_made:
            r = run("ip", "link", "del", self.bridge, check=False)
            if r.returncode != 0 and run("ip", "link", "show", self.bridge, check=False).returncode == 0:
                errors.append(f"ip link del {self.bridge}: {r.stderr.strip()}")
        self._torn_down = True
        _LIVE.discard(self)
        return errors

    def __enter__(self) -> PodNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def kill_pod_sshd(pod: NetnsPod, sig: int = signal.SIGKILL, timeout: float = 5) -> None:
    """Lose POD: kill its sshd (PID 1 of the pod), so the kernel kills every process in the pod.

    Idempotent; the netns (and the IP) stay until the network is torn down, so clients see a
    dead host (connection refused / reset), like a crashed machine on a live network.
    """
    if not pid_alive(pod.sshd_pid, pod.sshd_start):
        return
    try:
        os.kill(pod.sshd_pid, sig)
    except ProcessLookupError:
        return
    if not wait_pid_gone(pod.sshd_pid, pod.sshd_start, timeout):
        raise PodInfraError(f"sshd of {pod.name} (PID {pod.sshd_pid}) still alive after {timeout}s")


def pod_alive(pod: NetnsPod) -> bool:
    return pid_alive(pod.sshd_pid, pod.sshd_start)


def create_pods(n: int, workdir: Path, keys: SshKeys | None = None) -> PodNetwork:
    """A bridge plus N sshd pods. On any failure everything created so far is torn down."""
    net = PodNetwork(workdir, keys)
    try:
        for _ in range(n):
            net.add_pod()
    except BaseException:
        net.teardown()
        raise
    return net


@atexit.register
def _teardown_leftovers() -> None:
    for net in list(_LIVE):
        net.teardown()
