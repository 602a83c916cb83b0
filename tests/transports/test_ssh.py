"""SshTransport against a real OpenSSH sshd on loopback (tests/infra/sshd.py).

Covers: argv quoting, stdin/stdout/stderr as bytes, exit codes, the channel cap under stock
MaxSessions 10, host-key policy (unknown / opt-in / changed), unreachable and refused logins,
timeouts that kill the remote command, reconnects, jump hosts, and the pod agent over SSH.
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.transports.ssh import TIMEOUT_RETURNCODE, SshTransport, remote_command
from gpumod.spec.hosts import parse_jump
from gpumod.errors import PodError, PodUnreachableError
from gpumod.spec import parse_host
from infra.sshd import SshServer, free_port, keygen, known_hosts_entry

PY = sys.executable  # the pod is this machine's filesystem seen through sshd


def transport_for(server: SshServer, **options) -> SshTransport:
    options.setdefault("known_hosts", server.known_hosts)
    host = parse_host(f"ssh -p {server.port} -i {server.client_key} {server.user}@{server.host}")
    return SshTransport(host, pod="p1", **options)


@pytest.fixture
async def ssh(sshd: SshServer):
    transport = transport_for(sshd)
    yield transport
    await transport.close()


# -- pure helpers ----------------------------------------------------------------------------------


def test_remote_command_quotes_every_item_and_prefixes_env():
    assert remote_command(["echo", "a b", "$(id)", "it's"]) == "echo 'a b' '$(id)' 'it'\"'\"'s'"
    assert remote_command(["x"], {"PATH": "/a b:/c"}) == "env 'PATH=/a b:/c' x"
    with pytest.raises(ValueError):
        remote_command(["x"], {"BAD;NAME": "1"})


def test_parse_jump_hops():
    assert [(h.user, h.host, h.port) for h in parse_jump("bastion")] == [(None, "bastion", 22)]
    assert [(h.user, h.host, h.port) for h in parse_jump("u@a:2200,b")] == [("u", "a", 2200), (None, "b", 22)]
    with pytest.raises(ValueError, match="user@"):
        parse_jump("u@a:99999")


def test_from_host_accepts_both_forms():
    t = SshTransport.from_host("ssh root@1.2.3.4 -p 2222 -i ~/.ssh/k -J jump@5.6.7.8")
    assert (t.host.user, t.host.host, t.host.port, t.host.key) == ("root", "1.2.3.4", 2222, "~/.ssh/k")
    assert [(h.user, h.host) for h in t.hops] == [("jump", "5.6.7.8")]
    assert SshTransport.from_host("ssh://ubuntu@box:22").where == "ubuntu@box"


# -- commands ----------------------------------------------------------------------------------------


async def test_runs_argv_with_stdin_exit_code_and_bytes(ssh):
    code = (
        "import sys;d=sys.stdin.buffer.read();sys.stdout.buffer.write(d[::-1]);"
        "sys.stderr.buffer.write(b'err\\xff');sys.exit(3)"
    )
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = await ssh.run([PY, "-c", code], stdin=payload, timeout=30)
    assert result.returncode == 3
    assert result.stdout == payload[::-1]
    assert result.stderr == b"err\xff"


async def test_without_stdin_the_command_sees_eof(ssh):
    result = await ssh.run([PY, "-c", "import sys;print(repr(sys.stdin.read()))"], timeout=10)
    assert result.ok and result.stdout.strip() == b"''"


async def test_argv_items_arrive_verbatim(ssh, tmp_path):
    tricky = ["a b", "it's", 'say "hi"', "$(touch /tmp/gpumod-pwned-ssh)", "; rm -rf /nonexistent", "`id`",
              "*", "", "back\\slash", "new\nline", "$HOME", "-n", "ünï"]
    result = await ssh.run([PY, "-c", "import sys,json;print(json.dumps(sys.argv[1:]))", *tricky], timeout=10)
    assert result.ok, result.stderr
    assert json.loads(result.stdout) == tricky
    assert not Path("/tmp/gpumod-pwned-ssh").exists()


async def test_missing_command_is_127(ssh):
    result = await ssh.run(["/nonexistent/bin/thing", "x"], timeout=10)
    assert result.returncode == 127 and b"/nonexistent/bin/thing" in result.stderr


async def test_env_overrides_reach_the_command(sshd):
    transport = transport_for(sshd, env={"GPUMOD_T": "a b;c"})
    try:
        result = await transport.run([PY, "-c", "import os;print(os.environ['GPUMOD_T'])"], timeout=10)
        assert result.stdout == b"a b;c\n"
    finally:
        await transport.close()


async def test_fifty_concurrent_runs_share_one_connection_at_most_five_channels(sshd, tmp_path):
    assert sshd.max_sessions == 10  # stock sshd: frees session slots lazily (see ssh.py's docstring)
    transport = transport_for(sshd)
    running = tmp_path / "running"
    running.mkdir()
    script = f'touch {running}/$$; sleep 0.03; ls {running} | wc -l; rm {running}/$$; echo "$0"'
    try:
        results = await asyncio.gather(*(transport.run(["sh", "-c", script, f"n{i}"], timeout=60) for i in range(50)))
    finally:
        await transport.close()
    assert all(r.ok for r in results), [r.stderr for r in results if not r.ok]
    assert sorted(r.stdout.split()[1].decode() for r in results) == sorted(f"n{i}" for i in range(50))
    assert max(int(r.stdout.split()[0]) for r in results) <= 5
    assert transport.connects == 1


async def test_channel_open_refusals_are_retried(sshd):
    transport = transport_for(sshd, max_channels=12)  # more than sshd's MaxSessions 10: some opens fail
    try:
        results = await asyncio.gather(*(transport.run(["sleep", "0.2"], timeout=60) for _ in range(24)))
    finally:
        await transport.close()
    assert all(r.ok for r in results)
    assert transport.open_retries > 0


async def test_timeout_kills_the_remote_command_and_what_it_forked(ssh, tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $$ $! > {pids}; wait"
    started = time.monotonic()
    result = await ssh.run(["sh", "-c", script], timeout=1.0)
    assert result.returncode == TIMEOUT_RETURNCODE and b"timed out after 1 s" in result.stderr
    assert time.monotonic() - started < 3
    victims = pids.read_text().split()

    async def gone() -> bool:  # pids of the pod's PID namespace: look from the pod
        check = await ssh.run(
            [
                "sh",
                "-c",
                "for p; do grep -qsv '^[0-9]* ([^)]*) Z' /proc/$p/stat && exit 1; done; exit 0",
                "sh",
                *victims,
            ],
            timeout=10,
        )
        return check.ok

    deadline = time.monotonic() + 5
    while not await gone() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await gone()
    assert (await ssh.run(["true"], timeout=10)).ok  # the connection is still usable


# -- host keys ---------------------------------------------------------------------------------------


async def test_unknown_host_key_is_refused_naming_host_and_opt_in(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    transport = transport_for(sshd, known_hosts=known)
    with pytest.raises(PodError) as caught:
        await transport.run(["true"])
    message = str(caught.value)
    assert not isinstance(caught.value, PodUnreachableError)
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert "accept_new_host_key: true" in message and "pod p1" in message
    assert "SHA256:" in message and "\n" not in message
    assert known.read_text() == ""


async def test_opt_in_accepts_a_new_host_key_and_records_it(sshd, tmp_path):
    known = tmp_path / "fresh" / "known_hosts"  # neither the file nor its directory exist yet
    transport = transport_for(sshd, known_hosts=known, accept_new_host_key=True)
    try:
        assert (await transport.run(["true"], timeout=10)).ok
    finally:
        await transport.close()
    assert known.read_text() == known_hosts_entry(sshd.host, sshd.port, sshd.host_public_key) + "\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    strict = transport_for(sshd, known_hosts=known)  # now known: no opt-in needed
    try:
        assert (await strict.run(["true"], timeout=10)).ok
    finally:
        await strict.close()


async def test_changed_host_key_is_always_refused(sshd, tmp_path):
    other = keygen(tmp_path / "other_host_key")
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_entry(sshd.host, sshd.port, other) + "\n")
    before = known.read_text()
    for accept in (False, True):
        transport = transport_for(sshd, known_hosts=known, accept_new_host_key=accept)
        with pytest.raises(PodError, match="changed: possible MITM") as caught:
            await transport.run(["true"])
        assert "ssh-keygen -R" in str(caught.value) and f"[127.0.0.1]:{sshd.port}" in str(caught.value)
    assert known.read_text() == before


# -- unreachable -------------------------------------------------------------------------------------


async def test_wrong_key_is_unreachable_quickly(sshd, tmp_path):
    keygen(tmp_path / "stranger")
    host = parse_host(f"ssh -p {sshd.port} -i {tmp_path / 'stranger'} root@127.0.0.1")
    transport = SshTransport(host, pod="p1", known_hosts=sshd.known_hosts)
    started = time.monotonic()
    with pytest.raises(PodUnreachableError, match="login as root@\\[127.0.0.1\\]") as caught:
        await transport.run(["true"])
    assert time.monotonic() - started < 3
    assert "\n" not in str(caught.value) and caught.value.hint


async def test_missing_identity_file_is_a_clear_error(sshd, tmp_path):
    host = parse_host(f"ssh -p {sshd.port} -i {tmp_path / 'nope'} root@127.0.0.1")
    with pytest.raises(PodError, match="identity file"):
        await SshTransport(host, pod="p1", known_hosts=sshd.known_hosts).run(["true"])


async def test_closed_port_is_unreachable_quickly(tmp_path):
    port = free_port()  # nothing listens there
    transport = SshTransport(parse_host(f"ssh://root@127.0.0.1:{port}"), pod="p1", known_hosts=tmp_path / "kh")
    started = time.monotonic()
    with pytest.raises(PodUnreachableError, match=f"cannot reach root@\\[127.0.0.1\\]:{port}"):
        await transport.run(["true"])
    assert time.monotonic() - started < 2


async def test_silent_server_times_out_as_unreachable(tmp_path):
    with socket.socket() as listener:  # accepts TCP (backlog) but never speaks SSH
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        transport = SshTransport(
            parse_host(f"ssh://root@127.0.0.1:{port}"), pod="p1", known_hosts=tmp_path / "kh", connect_timeout_s=0.5
        )
        started = time.monotonic()
        with pytest.raises(PodUnreachableError, match="no SSH answer .* within 0.5 s"):
            await transport.run(["true"])
        assert time.monotonic() - started < 3


# -- connection lifecycle ----------------------------------------------------------------------------


async def test_reconnects_after_sshd_restart_on_the_same_port(sshd, ssh):
    assert (await ssh.run(["true"], timeout=10)).ok
    sshd.restart()
    assert (await ssh.run(["echo", "back"], timeout=10)).stdout == b"back\n"
    assert ssh.connects == 2
    assert (await ssh.run(["true"], timeout=10)).ok and ssh.connects == 2


async def test_connection_lost_mid_command_is_unreachable(sshd, ssh):
    task = asyncio.create_task(ssh.run(["sleep", "30"], timeout=60))
    await asyncio.sleep(0.3)
    sshd.stop()
    with pytest.raises(PodUnreachableError, match="lost while running sleep"):
        await asyncio.wait_for(task, 10)
    with pytest.raises(PodUnreachableError, match="cannot reach"):
        await ssh.run(["true"], timeout=10)


async def test_jump_host(sshd_factory, tmp_path):
    bastion = sshd_factory()
    target = sshd_factory(client_key=bastion.client_key)
    known = tmp_path / "known_hosts"
    known.write_text(bastion.known_hosts.read_text() + target.known_hosts.read_text())
    host = parse_host(f"ssh -p {target.port} -i {bastion.client_key} -J root@127.0.0.1:{bastion.port} root@127.0.0.1")
    transport = SshTransport(host, pod="p1", known_hosts=known)
    try:
        result = await transport.run(["sh", "-c", "echo $SSH_CONNECTION"], timeout=10)
    finally:
        await transport.close()
    assert result.ok and result.stdout.split()[-1] == str(target.port).encode()
    assert b"Accepted publickey" in target.log.read_bytes() and b"Accepted publickey" in bastion.log.read_bytes()


# -- the pod agent over SSH --------------------------------------------------------------------------


async def test_pod_agent_observes_starts_and_stops_a_real_process_over_ssh(ssh, tmp_path):
    port = free_port()
    state_dir = tmp_path / "state"
    agent = PodAgent(ssh, pod="loop", state_dir=str(state_dir), python=PY)
    launch = Launch(
        name="web", argv=(PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"), env=(), cwd=str(tmp_path),
        port=port, gpus=(), spec_hash="h1", driver="command", sleep="none", probes=(Probe("health", "/"),),
        stop_timeout_s=5.0,
    )
    assert (await agent.observe(probe=False))["services"] == {}
    started = await agent.start(launch)
    deadline = time.monotonic() + 10
    while True:
        seen = (await agent.observe())["services"]["web"]
        if seen.get("probes", {}).get("health", {}).get("status") == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert seen["alive"] is True and started["pid"] in seen["pids"]
    assert seen["probes"]["health"]["status"] == 200
    assert seen["meta"]["spec_hash"] == "h1"
    stopped = await agent.stop("web", 5.0)
    assert stopped
    assert (await agent.observe(probe=False))["services"] == {}
