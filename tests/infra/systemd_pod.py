"""A netns pod whose PID 1 is a real `systemd --system`.

Why: gpumod's systemd supervisor must be tested against a real systemd over SSH, but the machines
that run the tests do not boot with systemd. This boots the host's own systemd as PID 1 of a pod
with its own pid, mount, uts, cgroup and net namespaces, chrooted into a throw-away overlay of `/`
whose upper layer is a tmpfs. Safety rules, enforced here:
- systemd always gets its own cgroup namespace, rooted at a fresh cgroup2 subtree of ours
  (never the host's root cgroup), and never sees the real root filesystem (only the overlay);
- every mount lives in the pod's private mount namespace, so nothing leaks to the host;
- the pod's /tmp is a fresh tmpfs, and /etc/tmpfiles.d/tmp.conf is overridden in the overlay so
  systemd-tmpfiles never empties /tmp (where host directories such as the test dir are bound).

Inside: hostname = netns name, ssh.service (our host key, our authorized_keys, UsePAM no),
systemd-journald, an empty root ~/.bashrc. Host directories given in `binds` appear at the same
path (read-only unless listed in `rw_binds`), so the venv's absolute paths work in the pod.

Timings on the 2-core dev VM (systemd 252, measured): start to ssh banner 0.5-0.7 s, to
`is-system-running` = running 0.75-1.0 s; graceful halt (SIGRTMIN+3) 0.10-0.15 s; whole stop
incl. cgroup and netns removal ~0.2 s. `pod.timings` records them for every pod.
No pytest import here: benchmarks use this module too.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .netns import (
    PodInfraError,
    PodNetwork,
    SshKeys,
    keygen,
    known_hosts_line,
    netns_unavailable_reason,
    pid_alive,
    proc_stat,
    ssh_run,
    wait_child_exec,
    wait_pid_gone,
    wait_ssh_banner,
)

SYSTEMD = "/lib/systemd/systemd"
_LIVE: set[SystemdPod] = set()
POD_TARGET = """[Unit]
Description=gpumod test pod
Requires=basic.target
Wants=ssh.service systemd-journald.service
After=basic.target
AllowIsolate=yes
"""


def cgroup2_mount() -> Path | None:
    """Where cgroup2 is mounted (/sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on v2)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


def own_cgroup2_dir() -> Path | None:
    """This process's cgroup2 directory (from the `0::` line of /proc/self/cgroup)."""
    mnt = cgroup2_mount()
    if mnt is None:
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mnt / line[3:].strip().lstrip("/")
    return None


def systemd_unavailable_reason() -> str | None:
    """Why a systemd pod cannot run here (None when it can)."""
    reason = netns_unavailable_reason()
    if reason:
        return reason
    if not os.access(SYSTEMD, os.X_OK):
        return f"systemd pod needs {SYSTEMD} (apt-get install systemd)"
    if not Path("/lib/systemd/system/ssh.service").exists():
        return "systemd pod needs ssh.service (apt-get install openssh-server)"
    if shutil.which("chroot") is None or shutil.which("nsenter") is None:
        return "systemd pod needs chroot and nsenter (coreutils, util-linux)"
    if own_cgroup2_dir() is None:
        return "systemd pod needs a cgroup2 mount (no cgroup2 in /proc/self/mounts)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "systemd pod needs overlayfs (modprobe overlay)"
    return None


def _inner_script(*, root_dir: Path, name: str, hostkey: Path, authorized_keys: Path,
                  binds: Sequence[Path], rw_binds: Sequence[Path]) -> str:
    """The shell script run as the pod's first process: build the root, then exec systemd."""
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    lower, ovl, r = root_dir / "lower", root_dir / "ovl", root_dir / "root"
    lines = [
        "set -eu",
        f"R={q(r)}",
        f"mount --bind / {q(lower)}",  # non-recursive: the root fs only, no submounts
        f"mount -t tmpfs -o mode=0755 tmpfs {q(ovl)}",
        f"mkdir -p {q(ovl)}/upper {q(ovl)}/work",
        f"mount -t overlay overlay -o lowerdir={lower},upperdir={ovl}/upper,workdir={ovl}/work \"$R\"",
        'mount -t proc proc "$R/proc"',
        'mount --bind "$R/proc/sys" "$R/proc/sys" && mount -o remount,bind,ro "$R/proc/sys"',
        'mount -t sysfs -o ro sysfs "$R/sys"',
        'mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"',  # rooted at our cgroup namespace
        'mount -t tmpfs -o mode=0755 tmpfs "$R/dev"',
        'for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind /dev/$d "$R/dev/$d"; done',
        'mkdir "$R/dev/pts" "$R/dev/shm"',
        'mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"; ln -s pts/ptmx "$R/dev/ptmx"',
        'mount -t tmpfs tmpfs "$R/dev/shm"',
        'mount -t tmpfs -o mode=0755 tmpfs "$R/run"',
        'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"',
    ]
    for path in [*binds, *rw_binds]:
        lines.append(f'mkdir -p "$R"{q(path)} && mount --bind {q(path)} "$R"{q(path)}')
        if path not in rw_binds:
            lines.append(f'mount -o remount,bind,ro "$R"{q(path)}')
    lines += [
        f'echo {q(name)} > "$R/etc/hostname"',
        ': > "$R/etc/machine-id"',  # empty: systemd makes a transient one
        ': > "$R/root/.bashrc"',
        'mkdir -p -m 0700 "$R/root/.ssh"',
        f'cp {q(authorized_keys)} "$R/root/.ssh/authorized_keys" && chmod 600 "$R/root/.ssh/authorized_keys"',
        f'cp {q(hostkey)} "$R/etc/ssh/gpumod_host_ed25519" && chmod 600 "$R/etc/ssh/gpumod_host_ed25519"',
        "printf 'HostKey /etc/ssh/gpumod_host_ed25519\\nUsePAM no\\nPasswordAuthentication no\\n"
        "PermitRootLogin prohibit-password\\nAuthorizedKeysFile .ssh/authorized_keys\\n"
        "MaxSessions 50\\nMaxStartups 200:30:400\\n' > \"$R/etc/ssh/sshd_config.d/gpumod.conf\"",
        # Debian's tmp.conf says `D /tmp`: never let tmpfiles empty /tmp (host dirs are bound there)
        'mkdir -p "$R/etc/tmpfiles.d" && echo "d /tmp 1777 root root -" > "$R/etc/tmpfiles.d/tmp.conf"',
        'ln -sf /dev/null "$R/etc/systemd/system/systemd-tmpfiles-clean.timer"',
        f"cat > \"$R/etc/systemd/system/gpumod-pod.target\" <<'T'\n{POD_TARGET}T",
        f"hostname {q(name)}",
        'cd "$R"',
        f"exec env -i container=gpumod-pod TERM=dumb /usr/sbin/chroot . {SYSTEMD} --system"
        " --unit=gpumod-pod.target --log-target=console",
    ]
    return "\n".join(lines) + "\n"


class SystemdPod:
    """A running systemd pod. `ssh(cmd)` runs a command in it; `stop()` removes every trace."""

    def __init__(self, *, net: PodNetwork, owns_net: bool, name: str, ip: str, dir: Path,
                 cgroup: Path, launcher: subprocess.Popen[bytes], host_key_line: str) -> None:
        self.net, self._owns_net = net, owns_net
        self.name, self.ip, self.port, self.dir, self.cgroup = name, ip, 22, dir, cgroup
        self.launcher = launcher
        self.host_key_line = host_key_line
        self.systemd_pid = 0
        self.systemd_start = 0
        self.state = ""  # last `systemctl is-system-running` answer
        self.timings: dict[str, float] = {}
        self._stopped = False
        _LIVE.add(self)

    @property
    def keys(self) -> SshKeys:
        return self.net.keys

    def ssh(self, command: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
        return ssh_run(self.keys, self.ip, command, timeout=timeout, check=check)

    def nsenter_argv(self, *argv: str) -> list[str]:
        """Run ARGV inside the pod without ssh (all its namespaces, its root and cwd)."""
        return ["nsenter", "-t", str(self.systemd_pid), "-a", "-r", "-w", *argv]

    def alive(self) -> bool:
        return self.systemd_pid > 0 and pid_alive(self.systemd_pid, self.systemd_start)

    def stop(self, timeout: float = 10) -> list[str]:
        """Halt systemd (SIGRTMIN+3, then SIGKILL after TIMEOUT), remove cgroups and the netns.

        Idempotent; returns the problems met. Mounts need no cleanup: they only ever existed in
        the pod's mount namespace, which dies with its last process.
        """
        if self._stopped:
            return []
        errors: list[str] = []
        t0 = time.monotonic()
        if self.alive():
            try:
                os.kill(self.systemd_pid, signal.SIGRTMIN + 3)
            except ProcessLookupError:
                pass
            if not wait_pid_gone(self.systemd_pid, self.systemd_start, timeout):
                errors.append(f"systemd of {self.name} ignored SIGRTMIN+3 for {timeout}s; SIGKILL")
                try:
                    os.kill(self.systemd_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if not wait_pid_gone(self.systemd_pid, self.systemd_start, 5):
                    errors.append(f"systemd of {self.name} (PID {self.systemd_pid}) survived SIGKILL")
        self.timings["halt"] = time.monotonic() - t0
        try:
            self.launcher.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait(timeout=5)
        errors += remove_cgroup_tree(self.cgroup)
        if self._owns_net:
            errors += self.net.teardown()
        else:
            self.net.remove_netns(self.name)
        self.timings["stop"] = time.monotonic() - t0
        self._stopped = True
        _LIVE.discard(self)
        return errors

    def __enter__(self) -> SystemdPod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def remove_cgroup_tree(top: Path, timeout: float = 5) -> list[str]:
    """rmdir TOP and every cgroup below it, deepest first; retries while they drain."""
    deadline = time.monotonic() + timeout
    while top.exists():
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*dirs, top]:
            try:
                d.rmdir()
            except OSError:
                pass
        if top.exists():
            if time.monotonic() > deadline:
                return [f"cgroup {top} still exists after {timeout}s"]
            time.sleep(0.05)
    return []


def start_systemd_pod(workdir: Path, *, net: PodNetwork | None = None, binds: Sequence[Path] = (),
                      rw_binds: Sequence[Path] = (), timeout: float = 30) -> SystemdPod:
    """Boot a systemd pod on NET (a new private network when None) and wait until it runs.

    BINDS are host dirs shown read-only at the same path (e.g. the repo with its venv), RW_BINDS
    read-write (e.g. the test's tmp dir). Raises PodInfraError (after cleaning up) on failure.
    """
    reason = systemd_unavailable_reason()
    if reason:
        raise PodInfraError(reason)
    owns_net = net is None
    net = net or PodNetwork(Path(workdir) / "net")
    pod: SystemdPod | None = None
    name, cgroup = "", None
    try:
        t0 = time.monotonic()
        name, ip = net.add_netns()
        d = Path(workdir) / name
        for sub in ("lower", "ovl", "root"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        hostkey = keygen(d / "host_ed25519", comment=name)
        (own_cgroup2_dir() / f"gpumod-{name}").mkdir()  # type: ignore[operator]
        cgroup = own_cgroup2_dir() / f"gpumod-{name}"  # type: ignore[operator]
        inner = d / "inner.sh"
        inner.write_text(_inner_script(root_dir=d, name=name, hostkey=hostkey,
                                       authorized_keys=net.keys.authorized_keys,
                                       binds=[Path(b) for b in binds], rw_binds=[Path(b) for b in rw_binds]))
        q = shlex.quote
        launch = (
            f"echo $$ > {q(str(cgroup / 'cgroup.procs'))} && exec ip netns exec {q(name)} unshare --pid"
            f" --fork --mount --uts --cgroup --propagation private sh {q(str(inner))}"
        )
        with open(d / "console.log", "wb") as log:
            launcher = subprocess.Popen(["sh", "-c", launch], stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        pod = SystemdPod(net=net, owns_net=owns_net, name=name, ip=ip, dir=d, cgroup=cgroup,
                         launcher=launcher, host_key_line=known_hosts_line(ip, 22, Path(f"{hostkey}.pub")))
        pod.systemd_pid = wait_child_exec(launcher.pid, "systemd", timeout)
        pod.systemd_start = proc_stat(pod.systemd_pid)[1]  # type: ignore[index]
        net.add_known_host(pod.host_key_line)
        wait_ssh_banner(ip, 22, timeout, alive=pod.alive)
        pod.timings["ssh_ready"] = time.monotonic() - t0
        r = pod.ssh("systemctl is-system-running --wait", timeout=timeout)
        pod.state = r.stdout.strip()
        pod.timings["running"] = time.monotonic() - t0
        if pod.state not in ("running", "degraded"):
            raise PodInfraError(f"systemd pod {name} is {pod.state!r}: {r.stderr.strip()}")
        return pod
    except BaseException as e:
        log = ""
        if pod is not None:
            pod.stop(timeout=5)
            log = (pod.dir / "console.log").read_text(errors="replace")[-1500:]
        else:
            if cgroup is not None:
                remove_cgroup_tree(cgroup)
            net.teardown() if owns_net else net.remove_netns(name)
        if isinstance(e, Exception) and log:
            raise PodInfraError(f"{e}\n--- console.log tail ---\n{log}") from e
        raise


@atexit.register
def _stop_leftovers() -> None:
    for pod in list(_LIVE):
        pod.stop(timeout=5)


__all__ = [
    "SystemdPod", "start_systemd_pod", "systemd_unavailable_reason", "remove_cgroup_tree",
    "cgroup2_mount", "own_cgroup2_dir",
]
