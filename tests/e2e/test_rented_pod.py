"""examples/rented-pod against a bare network-namespace pod (real sshd, simulated GPUs): `gpumod
apply` installs uv, a venv with vLLM (the test index's sim stand-in) and huggingface_hub, downloads
both services' models from a local hub with progress, and serves them; a second apply has no
steps; a download interrupted by Ctrl+C resumes without fetching a byte twice; a download larger
than the free disk is refused with the numbers, nothing touched. No internet: a local PEP 503
index and a local hub on the pods' bridge."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
import yaml
from e2e_helpers import ROOT, Gpumod, wait_for

from infra.hubserver import HubRepo, HubServer
from infra.netns import ssh_run
from infra.pkgindex import standard_index

pytestmark = pytest.mark.e2e

MiB = 1 << 20
CHAT = HubRepo.generate("acme/chat-model", {"model.safetensors": 12 * MiB}, {"config.json": "{}\n"})
EMBED = HubRepo.generate("acme/embed-model", {"model.safetensors": 2 * MiB}, {"config.json": "{}\n"})
HUGE = HubRepo.generate("acme/huge-model", {"model.safetensors": 40 * MiB}, {"config.json": "{}\n"})
MODELS = {"chat": CHAT.repo_id, "embed": EMBED.repo_id}


def write_specs(dest: Path, tmp: Path, net, pod, index_url: str, models: dict[str, str]) -> None:
    """The example, pointed at the test pod: its host and keys, paths under the test's tmp dir,
    the local index, simulated GPUs, the hub's models."""
    dest.mkdir(exist_ok=True)
    for path in sorted((ROOT / "examples" / "rented-pod").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if doc["kind"] == "Pod":
                doc.update(
                    host=f"ssh://root@{pod.ip}:22", known_hosts=str(net.keys.known_hosts),
                    identity_file=str(net.keys.client_key), python=sys.executable, state_dir=str(tmp / "state"),
                    gpus=[{"name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}],
                    sim={"load_s": 0.2, "sleep_s": 0.1, "wake_s": 0.1},
                )
                doc["setup"].update(
                    venv=str(tmp / "venv"), models_path=str(tmp / "models"), index_url=index_url,
                    vllm="0.10.1", python=f"{sys.version_info[0]}.{sys.version_info[1]}",
                )
            elif doc["kind"] == "Service":
                doc["model"] = models[doc["name"]]
        (dest / path.name).write_text(yaml.safe_dump_all(docs))


@pytest.fixture
def rented(netns_pods, tmp_path: Path):
    net = netns_pods(1)
    index = standard_index(tmp_path / "index")
    url = index.serve(host=net.host_ip)
    hub = HubServer([CHAT, EMBED, HUGE], host=net.host_ip).start()
    specs = tmp_path / "specs"
    write_specs(specs, tmp_path, net, net.pods[0], url, MODELS)
    g = Gpumod(home=tmp_path / "home", specs=specs, extra_env={"HF_ENDPOINT": hub.endpoint, "TEST_INDEX_URL": url})
    try:
        yield g, net, hub, tmp_path
    finally:
        g.run("down", str(specs), "--yes", timeout=60)
        hub.stop()
        index.stop()


def test_apply_takes_a_bare_pod_to_serving_and_a_second_apply_has_no_steps(rented) -> None:
    g, _, hub, tmp = rented
    res = g.run("apply", str(g.specs), "--yes", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    for line in ("⚙ install uv", "⚙ create venv", "⚙ install vllm==0.10.1", "↓ download acme/chat-model",
                 "↓ download acme/embed-model"):
        assert line in out, out
    assert "100%" in out  # the download's progress
    services = g.services("rented")
    assert {n: s["state"] for n, s in services.items()} == {"chat": "running", "embed": "running"}
    records = {r["name"]: r for r in g.records_in(tmp / "state")}
    assert records["chat"]["argv"][0] == str(tmp / "venv" / "bin" / "vllm")
    assert dict(records["chat"]["env"])["HF_HUB_CACHE"] == str(tmp / "models" / "huggingface" / "hub")
    blob = tmp / "models" / "huggingface" / "hub" / "models--acme--chat-model" / "snapshots" / CHAT.commit
    assert (blob / "model.safetensors").stat().st_size == 12 * MiB

    again = g.run("apply", str(g.specs), "--yes", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "⚙" not in again.stdout and "↓" not in again.stdout and "+ start" not in again.stdout, again.stdout
    assert hub.bytes_sent(CHAT.repo_id, "model.safetensors") == 12 * MiB  # nothing fetched twice


def test_ctrl_c_during_a_download_then_apply_resumes_and_converges(rented) -> None:
    g, _, hub, tmp = rented
    release = hub.hold_after(CHAT.repo_id, "model.safetensors", 5 * MiB)  # the hub stalls mid-file
    blobs = tmp / "models" / "huggingface" / "hub" / "models--acme--chat-model" / "blobs"
    proc = g.popen("apply", str(g.specs), "--yes")
    try:
        assert hub.wait_bytes(CHAT.repo_id, "model.safetensors", 5 * MiB, timeout=300), "the download never started"
        # what the hub sent is on the pod's disk before Ctrl+C (bytes still in flight would be fetched again)
        wait_for(lambda: sum(p.stat().st_size for p in blobs.glob("*.incomplete")) == 5 * MiB, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Traceback" not in out, out
    partial = list(blobs.glob("*.incomplete"))
    assert partial and partial[0].stat().st_size == 5 * MiB  # kept for the next apply

    res = g.run("apply", str(g.specs), "--yes", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert {n: s["state"] for n, s in g.services("rented").items()} == {"chat": "running", "embed": "running"}
    assert hub.bytes_sent(CHAT.repo_id, "model.safetensors") == 12 * MiB  # resumed: no byte twice


def _index_url(g: Gpumod) -> str:
    return g.extra_env["TEST_INDEX_URL"]


def test_a_download_larger_than_the_free_disk_is_refused_with_the_numbers_nothing_touched(rented) -> None:
    g, net, hub, tmp = rented
    models = tmp / "models"
    models.mkdir()
    # a small disk for models_path, mounted inside the pod (its own mount namespace dies with it)
    mounted = ssh_run(net.keys, net.pods[0].ip, f"mount -t tmpfs -o size=8m tmpfs {models}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs in the pod: {mounted.stderr.strip()}")
    write_specs(g.specs, tmp, net, net.pods[0], _index_url(g), {"chat": HUGE.repo_id, "embed": EMBED.repo_id})
    res = g.run("apply", str(g.specs), "--yes", timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "acme/huge-model@main needs 41.9 MB more on " + str(models) in out, out
    assert "which has 8.4 MB free" in out and "Traceback" not in out, out
    assert not (tmp / "venv").exists()  # nothing ran: not even the set-up
    assert not [r for r in hub.log() if r.file]  # no file byte was fetched


def test_a_driver_too_old_for_the_vllm_wheel_is_refused_naming_both_versions(rented) -> None:
    g, net, hub, tmp = rented
    pod_file = g.specs / "pod.yaml"
    doc = yaml.safe_load(pod_file.read_text())
    doc["sim"]["driver_version"] = "470.182.03"
    pod_file.write_text(yaml.safe_dump(doc))
    for verb in ("plan", "apply", "setup"):
        res = g.run(verb, str(g.specs), *(["--yes"] if verb != "plan" else []), timeout=120)
        out = res.stdout + res.stderr
        assert res.returncode == 2, (verb, out)
        assert "470.182.03" in out and "vllm==0.10.1" in out and "525.60.13" in out and "Traceback" not in out, out
    assert not (tmp / "venv").exists() and not (tmp / "state" / "tools").exists()
    assert not [r for r in hub.log() if r.file]
    status = g.run("status", str(g.specs))  # status still shows the pod (it plans no set-up)
    assert status.returncode == 0 and "rented" in status.stdout, status.stdout + status.stderr


def test_setup_runs_only_the_set_up_then_models_lists_the_cache(rented) -> None:
    g, _, hub, tmp = rented
    res = g.run("setup", str(g.specs), "--yes", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "⚙ install uv" in res.stdout and "↓" not in res.stdout, res.stdout
    assert (tmp / "venv" / "bin" / "vllm").exists() and not g.records_in(tmp / "state")  # nothing started
    assert not [r for r in hub.log() if r.file]
    again = g.run("setup", str(g.specs), "--yes", timeout=120)
    assert again.returncode == 0 and "No changes" in again.stdout and "⚙" not in again.stdout, again.stdout

    res = g.run("apply", str(g.specs), "--yes", "-o", "json", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    chat = [e for e in events if e["event"] == "progress" and e["service"] == "chat"]
    assert chat and chat[-1]["kind"] == "done" and chat[-1]["done"] == chat[-1]["total"] == CHAT.size
    assert [s["action"] for s in json.loads(res.stdout)["steps"]][:2] == ["download", "download"]

    listed = g.run("models", str(g.specs), "-o", "json")
    assert listed.returncode == 0, listed.stderr
    pod = json.loads(listed.stdout)["pods"][0]
    assert pod["cache"] == str(tmp / "models" / "huggingface" / "hub") and pod["free_bytes"] > 0
    assert {m["repo"]: (m["bytes"], m["complete"]) for m in pod["models"]} == {
        CHAT.repo_id: (CHAT.size, True), EMBED.repo_id: (EMBED.size, True)}
    text = g.run("models", str(g.specs))
    assert "acme/chat-model  12.6 MB" in text.stdout, text.stdout
