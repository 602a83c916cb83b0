"""End-to-end fixtures: a copy of a spec repo, a private GPUMOD_HOME, and the real `gpumod`
command run as a subprocess against the simulated pod. Every service process the tests cause is
killed by PID (from the records gpumod keeps on the pod) when the test ends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from testkit import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gpumod:
    home: Path
    specs: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GPUMOD_HOME"] = str(self.home)
        env["COLUMNS"] = "200"
        env.pop("GPUMOD_LOG", None)
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # gpumod.entry is the console script's module: a plain `plan` runs there without typer
        return subprocess.run(
            [sys.executable, "-m", "gpumod.entry", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "gpumod.entry", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def status(self) -> dict:
        """`gpumod status -o json`: exit 0, or 2 when a pod could not be observed (then also JSON)."""
        res = self.run("status", str(self.specs), "-o", "json")
        found = json.loads(res.stdout) if res.stdout.strip() else {}
        unreachable = [p for p in found.get("pods", {}).values() if not p["reachable"]]
        assert res.returncode == (2 if unreachable else 0) and "pods" in found, res.stdout + res.stderr
        return found

    def services(self, pod: str) -> dict[str, dict]:
        return {row["service"]: row for row in self.status()["pods"][pod]["services"]}

    def records(self) -> list[dict]:
        return self.records_in(self.home)

    @staticmethod
    def records_in(state_dir: Path) -> list[dict]:
        found = []
        for path in state_dir.glob("pods/*/services/*.json"):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass
        return found

    def nvidia_smi(self, pod: str, *args: str) -> str:
        sim = self.home / "sim" / pod
        env = self.env | {"GPUMOD_SIM_DIR": str(sim)}
        res = subprocess.run(
            [str(sim / "bin" / "nvidia-smi"), *args], capture_output=True, text=True, env=env, timeout=30
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def set_mode(self, pod_file: str, mode: str) -> None:
        path = self.specs / pod_file
        lines = path.read_text().splitlines(keepends=True)
        out = [f"mode: {mode}\n" if line.startswith("mode:") else line for line in lines]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(out))
        os.replace(tmp, path)  # like an editor's atomic save


def use_free_ports(specs: Path) -> None:
    """Give every service of a copied spec repo a free port, so the tests never collide with a
    pod the user left running (the README's quickstart leaves `specs/` applied) or each other."""
    for path in sorted(specs.rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if not any(d.get("kind") == "Service" for d in docs):
            continue
        for doc in docs:
            if doc.get("kind") == "Service":
                doc["port"] = free_port()
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def write_sdpod_specs(g: Gpumod, pod, state: Path, mode: str, rest: str) -> None:
    """Write ``all.yaml``: the ``sdpod`` Pod document for the ``systemd_pod`` fixture (reached over
    SSH, ``supervisor: auto``, one simulated RTX 4090, its state in STATE), then REST (the test's
    services and modes)."""
    pod_doc = f"""kind: Pod
name: sdpod
host: ssh://root@{pod.ip}:{pod.port}
mode: {mode}
supervisor: auto
known_hosts: {pod.keys.known_hosts}
identity_file: {pod.keys.client_key}
python: {sys.executable}
state_dir: {state}
gpus: [{{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}}]
sim: {{load_s: 0.3, sleep_s: 0.1, wake_s: 0.1}}
---
"""
    (g.specs / "all.yaml").write_text(pod_doc + rest)


def http_status(url: str, key: str | None = None) -> int:
    """GET URL (with ``Authorization: Bearer KEY`` when KEY is given) and return the HTTP status."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def kill_recorded(home: Path) -> None:
    for path in home.glob("pods/*/services/*.json"):
        try:
            pid = int(json.loads(path.read_text()).get("pid") or 0)
        except (OSError, ValueError):
            continue
        if pid > 1:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def runs_on_sim_pods_only(repo: Path) -> bool:
    """Whether every Pod of a spec repo is a simulated pod on this machine (``host: sim``): such a
    repo is applied here as it is; one with SSH pods is applied on the tests' own pods instead."""
    hosts = [
        doc.get("host")
        for path in sorted(repo.rglob("*.y*ml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Pod"
    ]
    return bool(hosts) and all(host == "sim" for host in hosts)


def unreachable_copy(example: str, dest: Path) -> Path:
    """A copy of ``examples/EXAMPLE`` (ssh-fleet or rented-pod) at DEST whose SSH pods point at
    loopback ports nobody listens on: pods that cannot be reached, refused at once."""
    shutil.copytree(ROOT / "examples" / example, dest)
    for path in dest.glob("*.yaml"):
        text = path.read_text()
        text = text.replace("gpu@192.0.2.10:22", f"gpu@127.0.0.1:{free_port()}")
        path.write_text(text.replace("root@203.0.113.7 -p 22022", f"root@127.0.0.1 -p {free_port()}"))
    return dest
