"""The pod test infrastructure works: netns sshd pods and the systemd-as-PID-1 pod.

Why: every SSH, fleet and systemd test of issue 3 stands on these pods; if a pod leaks a process,
a namespace, a mount or a cgroup, or two pods share a port space, those tests lie. Real parts only:
real sshd, real systemd, real processes, asyncssh and HTTP over the pods' veths.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncssh
import pytest

from .netns import NetnsPod, PodNetwork, kill_pod_sshd, pid_alive, pod_alive, run, ssh_run
from .pod_fixtures import pod_binds, require_systemd_pod  # the fixtures come via tests/conftest.py
from .systemd_pod import SystemdPod, start_systemd_pod

PY = sys.executable  # the venv's python: the pods must be able to run it


async def connect(net_keys, ip: str) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(ip, port=22, username="root", client_keys=[str(net_keys.client_key)],
                                  known_hosts=str(net_keys.known_hosts))


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url: str, timeout: float = 10) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url)
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused(url: str) -> bool:
    try:
        http_get(url, timeout=2)
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def host_pids_with(marker: str) -> list[int]:
    """Host PIDs whose argv contains MARKER (how the host finds processes started in a pod)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def start_detached(pod: NetnsPod, net: PodNetwork, marker: str, how: str = "nohup") -> str:
    """Start a sleeping python in POD over ssh, detached (nohup, or setsid double fork)."""
    prog = f"{PY} -c 'import time; time.sleep(600)' {marker}"
    cmd = {
        "nohup": f"nohup {prog} >/dev/null 2>&1 </dev/null & echo $!",
        "setsid": f"(setsid sh -c '{prog.replace(chr(39), chr(34))} &') >/dev/null 2>&1 </dev/null; echo ok",
    }[how]
    r = ssh_run(net.keys, pod.ip, cmd, check=True, timeout=20)
    return r.stdout.strip()


# ------------------------------------------------------------------ netns pods


async def test_two_pods_reachable_by_asyncssh_with_own_hostnames_and_the_venv(netns_pods) -> None:
    net = netns_pods(2)
    assert len({p.ip for p in net.pods}) == 2 and all(p.ip.startswith("10.2") for p in net.pods)
    for pod in net.pods:
        async with await connect(net.keys, pod.ip) as conn:  # known_hosts is checked
            r = await conn.run(f"hostname; cat /proc/1/comm; {PY} -c 'import gpumod; print(\"ok\")'", check=True)
            assert r.stdout.split() == [pod.name, "sshd", "ok"]


def test_pods_have_separate_port_spaces(netns_pods, tmp_path: Path) -> None:
    net = netns_pods(2)
    a, b = net.pods
    for pod in (a, b):  # the same port in both pods: no clash
        (tmp_path / pod.name).mkdir()
        (tmp_path / pod.name / "who").write_text(pod.name)
        ssh_run(net.keys, pod.ip, f"cd {tmp_path / pod.name}; nohup {PY} -m http.server 8000 "
                f">/dev/null 2>&1 </dev/null &", check=True)
    ssh_run(net.keys, a.ip, f"cd {tmp_path}; nohup {PY} -m http.server 8001 >/dev/null 2>&1 </dev/null &", check=True)
    assert wait_http(f"http://{a.ip}:8000/who") == (200, a.name)
    assert wait_http(f"http://{b.ip}:8000/who") == (200, b.name)
    wait_http(f"http://{a.ip}:8001/")
    assert refused(f"http://{b.ip}:8001/")  # only pod a listens on 8001
    probe = f"{PY} -c 'import socket; socket.create_connection((\"127.0.0.1\", 8001), 2)'"
    assert ssh_run(net.keys, b.ip, probe).returncode != 0  # b's loopback is its own
    assert ssh_run(net.keys, a.ip, probe).returncode == 0


async def test_killing_a_pods_sshd_kills_its_processes_and_spares_the_other(netns_pods) -> None:
    net = netns_pods(2)
    lost, kept = net.pods
    marks = {p.name: [f"gpumod-mark-{secrets.token_hex(4)}" for _ in range(2)] for p in net.pods}
    for pod in net.pods:
        start_detached(pod, net, marks[pod.name][0], "nohup")
        start_detached(pod, net, marks[pod.name][1], "setsid")
    pids = {m: host_pids_with(m) for ms in marks.values() for m in ms}
    assert all(len(p) == 1 for p in pids.values()), pids

    async with await connect(net.keys, lost.ip) as conn:
        await conn.run("true", check=True)
        kill_pod_sshd(lost)  # the pod "crashes" under an open connection
        with pytest.raises((asyncssh.Error, OSError)):
            await asyncio.wait_for(conn.run("true", check=True), 5)
    assert not pod_alive(lost)
    for m in marks[lost.name]:
        assert not pid_alive(pids[m][0]) and host_pids_with(m) == []
    for m in marks[kept.name]:
        assert pid_alive(pids[m][0])
    assert ssh_run(net.keys, kept.ip, "hostname").stdout.strip() == kept.name
    with pytest.raises((asyncssh.Error, OSError)):
        await asyncio.wait_for(connect(net.keys, lost.ip), 5)

    assert net.teardown() == [] and net.teardown() == []  # idempotent
    for m in marks[kept.name]:
        assert host_pids_with(m) == []
    listed = run("ip", "netns", "list").stdout
    assert all(p.name not in listed for p in net.pods)
    assert run("ip", "link", "show", net.bridge, check=False).returncode != 0
    assert net.token not in run("ip", "-o", "link").stdout  # no veth left either


# ------------------------------------------------------------------ systemd pod

UNIT = """[Unit]
Description=gpumod infra probe
[Service]
ExecStart={py} -m http.server {port} --directory {d}
Restart=on-failure
RestartSec=0.2
"""


def install_unit(pod: SystemdPod, name: str, port: int, d: Path) -> None:
    text = UNIT.format(py=PY, port=port, d=d)
    pod.ssh(f"cat > /etc/systemd/system/{name}.service <<'EOF'\n{text}EOF\nsystemctl daemon-reload", check=True)


def show(pod: SystemdPod, unit: str) -> dict[str, str]:
    r = pod.ssh(f"systemctl show -p ActiveState,SubState,MainPID,NRestarts {unit}", check=True)
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


async def test_systemd_pod_is_running_real_systemd_over_ssh(systemd_pod: SystemdPod) -> None:
    async with await connect(systemd_pod.keys, systemd_pod.ip) as conn:
        r = await conn.run("systemctl is-system-running; cat /proc/1/comm; hostname; "
                           f"{PY} -c 'import gpumod; print(\"ok\")'", check=False)
    assert r.stdout.split() == ["running", "systemd", systemd_pod.name, "ok"], r.stderr


def test_systemd_pod_runs_a_unit_reachable_from_the_host(systemd_pod: SystemdPod, tmp_path: Path) -> None:
    (tmp_path / "hello").write_text("from the pod")  # tmp_path is shared with the pod
    install_unit(systemd_pod, "gpumod-infra-http", 8000, tmp_path)
    try:
        systemd_pod.ssh("systemctl start gpumod-infra-http", check=True)
        assert wait_http(f"http://{systemd_pod.ip}:8000/hello") == (200, "from the pod")
        st = show(systemd_pod, "gpumod-infra-http")
        assert (st["ActiveState"], st["SubState"], st["NRestarts"]) == ("active", "running", "0")
        # the service lives in the pod's own cgroup tree, visible from the host
        procs = systemd_pod.cgroup / "system.slice" / "gpumod-infra-http.service" / "cgroup.procs"
        assert len(procs.read_text().split()) == 1
    finally:
        systemd_pod.ssh("systemctl stop gpumod-infra-http; rm -f /etc/systemd/system/gpumod-infra-http.service;"
                        " systemctl daemon-reload")
    assert show(systemd_pod, "gpumod-infra-http")["ActiveState"] == "inactive"
    assert refused(f"http://{systemd_pod.ip}:8000/")


def test_systemd_pod_teardown_leaves_nothing_behind(tmp_path: Path) -> None:
    require_systemd_pod()
    (tmp_path / "sentinel").write_text("kept")  # systemd-tmpfiles in the pod must not wipe bound dirs
    pod = start_systemd_pod(tmp_path / "sp", binds=pod_binds(), rw_binds=[tmp_path])
    try:
        assert pod.state == "running"
        assert pod.ssh(f"cat {tmp_path}/sentinel").stdout == "kept"
        install_unit(pod, "gpumod-infra-leak", 8002, tmp_path)
        pod.ssh("systemctl start gpumod-infra-leak", check=True)
        wait_http(f"http://{pod.ip}:8002/")
        service_pids = [int(p) for p in (pod.cgroup / "system.slice" / "gpumod-infra-leak.service"
                                         / "cgroup.procs").read_text().split()]
        all_pids = [int(p) for p in subprocess.run(
            ["find", str(pod.cgroup), "-name", "cgroup.procs", "-exec", "cat", "{}", "+"],
            capture_output=True, text=True, check=True).stdout.split()]
        assert pod.systemd_pid in all_pids and service_pids
    finally:
        errors = pod.stop()
    assert errors == [] and pod.stop() == []
    assert not pod.alive()
    assert not any(pid_alive(p) for p in all_pids)
    assert not pod.cgroup.exists()
    assert pod.name not in run("ip", "netns", "list").stdout
    assert run("ip", "link", "show", pod.net.bridge, check=False).returncode != 0
    assert str(pod.dir) not in Path("/proc/self/mountinfo").read_text()
    assert pod.launcher.poll() is not None
    assert (tmp_path / "sentinel").read_text() == "kept"
    print(f"systemd pod timings: {pod.timings}")
