"""The CLI at its edges, as a user meets them: service output that looks like markup, a service
that never becomes healthy, logs of a stopped service, a held lock, `simulate` what-ifs.

Each test writes a small spec repo of its own (one simulated pod, command-driver services that
are plain shell lines) and runs the real `gpumod` command against it.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from testkit import free_port, pids_by_argv

from e2e_helpers import Gpumod, kill_recorded, wait_for

pytestmark = pytest.mark.e2e
POD = "box"
MARKUP_LINES = ["[x] [/path]", "INFO 05-01 [api_server.py:1024] Starting vLLM API server", "[bold]b[/bold] [/]"]


def _repo(root: Path, services: str, members: str) -> Path:
    specs = root / "specs"
    specs.mkdir()
    (specs / "pod.yaml").write_text(
        textwrap.dedent(
            f"""\
            kind: Pod
            name: {POD}
            host: sim
            mode: m
            gpus:
              - {{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}}
            ---
            kind: Mode
            name: m
            services: [{members}]
            """
        )
    )
    (specs / "services.yaml").write_text(textwrap.dedent(services))
    return specs


def _sh_service(name: str, script: str, *, timeout_s: float = 5, extra: str = "") -> str:
    return f"""\
---
kind: Service
name: {name}
driver: command
vram_mb: 100
port: {free_port()}
command: [sh, -c, {json.dumps(script)}]
health: {{startup_timeout_s: {timeout_s}}}
{extra}"""


@pytest.fixture
def edge(tmp_path: Path):
    made: list[Gpumod] = []

    def make(services: str, members: str) -> Gpumod:
        g = Gpumod(home=tmp_path / "home", specs=_repo(tmp_path, services, members))
        made.append(g)
        return g

    yield make
    for g in made:
        g.run("down", str(g.specs), "--yes")
        kill_recorded(g.home)


def _printing_and_exiting() -> str:
    echo = "; ".join(f"echo {json.dumps(line)}" for line in MARKUP_LINES)
    return _sh_service("bad", f"{echo}; exit 3")


def test_service_output_that_looks_like_markup_is_shown_verbatim(edge) -> None:
    g = edge(_printing_and_exiting(), "bad")
    res = g.run("apply", str(g.specs), "--yes")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    for line in MARKUP_LINES:
        assert line in res.stdout  # verbatim: rich read no tag out of it
    assert "FAILED" in res.stdout and "Recap:" in res.stdout


def test_watch_survives_a_failing_service_that_prints_markup(edge) -> None:
    g = edge(_printing_and_exiting(), "bad")
    proc = g.popen("watch", str(g.specs), "--interval", "2")
    seen: list[str] = []
    watchdog = threading.Timer(120, proc.kill)  # a watch that goes silent must not hang the test
    watchdog.start()
    try:
        # the first pass fails the start; later passes defer it (backoff) and keep printing
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum("Recap:" in ln or "problem:" in ln for ln in seen) < 2:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
        assert proc.poll() is None, "".join(seen)  # still watching
        text = "".join(seen)
        assert "[x] [/path]" in text and "[api_server.py:1024]" in text, text
        assert "Traceback" not in text
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except Exception:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(seen) + rest
    assert "watch stopped" in rest


def test_status_says_why_a_service_is_degraded(edge) -> None:
    g = edge(_sh_service("slow", "echo '[x] loading forever'; sleep 300", timeout_s=2), "slow")
    res = g.run("apply", str(g.specs), "--yes")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "not healthy after 2 s" in res.stdout
    row = g.services(POD)["slow"]
    assert row["degraded"] is True and row["failures"] == 1
    assert row["last_error"].startswith("not healthy after 2 s"), row
    assert row["last_log_line"] == "[x] loading forever"
    assert "retry_at" in row and row["last_failure_at"]
    table = g.run("status", str(g.specs))
    assert table.returncode == 0, table.stderr
    assert "degraded" in table.stdout and "1 failed start" in table.stdout
    assert "not healthy after 2 s" in table.stdout and "[x] loading forever" in table.stdout
    plan = g.run("plan", str(g.specs))  # deferred (backoff) or retried: never called a crash loop
    assert "crash" not in (res.stdout + table.stdout + plan.stdout).lower()


def _sim_server(name: str, port: int, env: str = "") -> str:
    return f"""\
---
kind: Service
name: {name}
driver: command
vram_mb: 100
port: {port}
command: ["{{python}}", -m, gpumod.sim.server, --flavour, plain, --, --port, "{{port}}"]
{env}"""


def test_a_spec_change_names_the_fields_that_changed(edge) -> None:
    g = edge(_sim_server("web", free_port()), "web")
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    (g.specs / "services.yaml").write_text(_sim_server("web", free_port(), "env: {MODE: fast}\n"))
    plan = g.run("plan", str(g.specs))
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "~ restart web: spec changed: env, port" in plan.stdout, plan.stdout


def test_simulate_adds_dependencies_and_shows_current_next_to_proposed(gpumod: Gpumod) -> None:
    pod = "sim-box"
    res = gpumod.run("simulate", str(gpumod.specs), "--pod", pod, "--add", "chat", "-o", "json")
    assert res.returncode == 1, res.stdout + res.stderr  # chat needs embedding: together they do not fit
    sim = json.loads(res.stdout)
    assert sim["fits"] is False and sim["current"]["fits"] is True
    assert sim["current"]["services"] == ["embedding-code", "glm-code"]
    assert set(sim["proposed"]["services"]) == {"embedding-code", "glm-code", "chat", "embedding"}
    assert sim["proposed"]["dependencies"] == ["embedding"] and sim["proposed"]["add"] == ["chat"]
    users = {u["name"] for u in sim["proposed"]["gpus"][0]["users"]}
    assert {"chat", "embedding"} <= users
    assert sim["proposed"]["infeasible"]["alternatives"]

    text = gpumod.run("simulate", str(gpumod.specs), "--pod", pod, "--add", "chat")
    assert text.returncode == 1
    assert "current:  mode code" in text.stdout and "proposed: mode code + chat (+ embedding" in text.stdout
    lines = text.stdout.splitlines()
    header = next(ln for ln in lines if "current" in ln and "proposed" in ln)
    assert header.split() == ["current", "proposed"]
    assert any(ln.split()[:2] == ["embedding", "-"] for ln in lines)  # not in the current mode
    assert any(ln.strip().startswith("current") and "fits" in ln for ln in lines)
    assert any(ln.strip().startswith("proposed") and "exceeds by" in ln for ln in lines)
    assert "✗ does not fit" in text.stdout

    only = gpumod.run("simulate", str(gpumod.specs), "--pod", pod, "--services", "chat,asr", "-o", "json")
    assert only.returncode == 0, only.stdout + only.stderr
    sim = json.loads(only.stdout)
    assert sim["fits"] is True and set(sim["proposed"]["services"]) == {"chat", "asr", "embedding"}
    both = gpumod.run("simulate", str(gpumod.specs), "--pod", pod, "--services", "chat", "--mode", "code")
    assert both.returncode == 2 and "Traceback" not in both.stderr
    assert gpumod.records() == []  # simulate touches nothing


def test_problems_that_are_not_in_the_files_do_not_send_the_user_to_validate(edge, tmp_path: Path) -> None:
    secret = _sh_service("s", "sleep 300", extra="env: {API_TOKEN: {from_env: GPUMOD_TEST_NEVER_SET}}\n")
    g = edge(secret, "s")
    res = g.run("apply", str(g.specs), "--yes")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "GPUMOD_TEST_NEVER_SET" in res.stderr and "provide the secrets" in res.stderr
    assert "1 secret(s) missing on this machine" in res.stderr and "problem(s) in the specs" not in res.stderr
    env_line = (g.specs / "services.yaml").read_text().splitlines().index(
        "env: {API_TOKEN: {from_env: GPUMOD_TEST_NEVER_SET}}"
    ) + 1
    assert f"services.yaml:{env_line}: service s: API_TOKEN" in res.stderr, res.stderr  # the env line, not the document
    assert "gpumod validate" not in res.stderr and g.records() == []

    if shutil.which("nvidia-smi"):
        return  # a machine with GPUs: the local pod has some
    local = tmp_path / "local"
    local.mkdir()
    (local / "pod.yaml").write_text("kind: Pod\nname: here\nhost: local\nmode: m\n---\nkind: Mode\nname: m\n")
    res = g.run("plan", str(local))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "has no GPUs known" in res.stderr and "nvidia-smi" in res.stderr
    assert "gpumod validate" not in res.stderr


def test_plan_on_an_unreachable_pod_does_not_say_no_changes(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "pod.yaml").write_text(
        f"kind: Pod\nname: far\nhost: ssh://nobody@127.0.0.1:{free_port()}\nmode: m\n"
        "gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]\n---\nkind: Mode\nname: m\n"
    )
    res = Gpumod(home=tmp_path / "home", specs=specs).run("plan", str(specs))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "No changes" not in res.stdout, res.stdout
    assert "Not planned: pod far could not be observed." in res.stdout
    assert "error: pod far cannot be planned: cannot reach" in res.stderr, res.stderr


def _followers(log: Path) -> list[int]:
    """PIDs of processes following ``log`` (the follow script's argv names it)."""
    return pids_by_argv(lambda argv: str(log).encode() in argv and any(b"threading" in a for a in argv))


def test_logs_follow_until_ctrl_c_and_logs_of_a_stopped_service(edge) -> None:
    g = edge(_sim_server("web", free_port()), "web")
    assert g.run("apply", str(g.specs), "--yes").returncode == 0
    log = g.home / "pods" / POD / "logs" / "web.log"
    proc = g.popen("logs", str(g.specs), "web", "-n", "1", "-f")
    watchdog = threading.Timer(60, proc.kill)  # a follow that never shows the line must not hang the test
    watchdog.start()
    try:
        first = proc.stdout.readline()
        assert first.strip(), first
        with log.open("a") as f:
            f.write("appended later [x] [/path]\n")
        line = first
        while line and "appended later" not in line:
            line = proc.stdout.readline()
        assert line.rstrip("\n") == "appended later [x] [/path]", line
    except BaseException:
        proc.kill()
        raise
    finally:
        watchdog.cancel()
    assert _followers(log), "the follower runs on the pod while gpumod follows"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    wait_for(lambda: not _followers(log), timeout=10)  # nothing left behind on the pod

    assert g.run("down", str(g.specs), "--yes").returncode == 0
    assert g.records() == []
    stopped = g.run("logs", str(g.specs), "web", "-n", "5")
    assert stopped.returncode == 0, stopped.stderr
    assert "appended later [x] [/path]" in stopped.stdout


HOLD = """
import asyncio, sys
from gpumod.drivers.agent.lock import acquire_pod_lock, owner_info
from gpumod.drivers.transports.local import LocalTransport

async def main():
    lock = await acquire_pod_lock(LocalTransport(), pod=sys.argv[2], state_dir=sys.argv[1], python=sys.executable,
                                  owner=owner_info("gpumod apply elsewhere/"))
    print("held", flush=True)
    while lock.held:
        await asyncio.sleep(0.1)
    print("lost", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@contextmanager
def _lock_held(g: Gpumod) -> Iterator[subprocess.Popen[str]]:
    """A live process holding POD's lock (HOLD): it prints "lost" when its lock is broken; killed after."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(g.home), POD], stdout=subprocess.PIPE, text=True, env=g.env,
        stdin=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_locked_pod_names_the_real_unlock_line_and_unlock_asks_before_breaking_a_live_holder(edge) -> None:
    g = edge(_sh_service("s", "sleep 300"), "s")
    with _lock_held(g) as holder:
        res = g.run("apply", str(g.specs), "--yes")
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"gpumod unlock {POD} --specs {g.specs}" in res.stdout + res.stderr
        assert g.records() == []

        refused = g.run("unlock", POD, "--specs", str(g.specs))  # no terminal, no --yes
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "locked right now" in refused.stderr and "--yes" in refused.stderr
        assert holder.poll() is None

        broken = g.run("unlock", POD, "--specs", str(g.specs), "--yes")
        assert broken.returncode == 0, broken.stdout + broken.stderr
        assert "broke the lock" in broken.stdout
        assert holder.stdout.readline().strip() == "lost"  # its holder on the pod was killed
        again = g.run("unlock", POD, "--specs", str(g.specs))
        assert again.returncode == 0 and "was not locked" in again.stdout
        elsewhere = subprocess.run(  # the default --specs is ./specs: say so where there is none
            [sys.executable, "-m", "gpumod.cli", "unlock", POD], capture_output=True, text=True, env=g.env,
            cwd=g.home, stdin=subprocess.DEVNULL, timeout=60,
        )
        assert elsewhere.returncode == 2 and "--specs" in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def _on_a_terminal(g: Gpumod, answer: str, *args: str) -> tuple[int, str]:
    """Run gpumod with a pseudo-terminal as stdin/stdout, answer its question, return (exit, output)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpumod.cli", *args], stdin=follower, stdout=follower, stderr=follower, env=g.env,
    )
    os.close(follower)
    out = b""
    try:
        while b"?" not in out:
            chunk = os.read(leader, 4096)
            if not chunk:
                break
            out += chunk
        os.write(leader, answer.encode() + b"\n")
        proc.wait(timeout=60)
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return proc.returncode, out.decode(errors="replace")


def test_unlock_on_a_terminal_asks_before_breaking_a_live_holder(edge) -> None:
    g = edge(_sh_service("s", "sleep 300"), "s")
    with _lock_held(g) as holder:
        code, out = _on_a_terminal(g, "n", "unlock", POD, "--specs", str(g.specs))
        assert code == 1, out
        assert "locked right now" in out and "gpumod apply elsewhere/" in out
        assert holder.poll() is None
        code, out = _on_a_terminal(g, "y", "unlock", POD, "--specs", str(g.specs))
        assert code == 0 and "broke the lock" in out, out
        assert holder.stdout.readline().strip() == "lost"


def test_a_failed_step_names_its_pod_once(edge) -> None:
    """A start refused on the pod (its port is taken by a process gpumod does not manage): the
    step line and the problem name pod and service once each, then the cause."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = _sh_service("s", "sleep 300").replace("port: ", f"port: {port}\n# was: ", 1)
        g = edge(svc, "s")
        res = g.run("apply", str(g.specs), "--yes")
    text = res.stdout + res.stderr
    assert res.returncode == 1, text
    assert f"port {port} of s is already in use" in text
    failed = [line for line in text.splitlines() if f"port {port}" in line and "reconcile_id=" not in line]  # not logs
    assert failed and all(len(re.findall(rf"\b{POD}\b", line)) == 1 for line in failed), failed
