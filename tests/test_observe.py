"""parse_observation on recorded agent answers, and observe_pod through a fake transport."""

from __future__ import annotations

from pathlib import Path

from gpumod.drivers.agent import PodAgent
from gpumod.drivers.transports import FakeTransport
from gpumod.observe import observe_pod, parse_observation
from gpumod.ports import CommandResult

DATA = Path(__file__).parent / "drivers" / "data"
G0 = "GPU-6b3fe2a8-3d3c-8b1e-5b2e-4f3e0b8f9a11"
G1 = "GPU-0d1e3c6a-77aa-4c1d-9e0f-2b9d6c3e5f22"


def sample(name: str) -> str:
    return (DATA / name).read_text()


def meta(name: str, driver: str, sleep: str = "none", pid: int = 100, **kw) -> dict:
    probes = {"vllm": [{"key": "health", "path": "/health"}, {"key": "metrics", "path": "/metrics"}],
              "llamacpp": [{"key": "health", "path": "/health"}]}.get(driver, [{"key": "health", "path": "/health"}])
    if driver == "vllm" and sleep in ("l1", "l2"):
        probes.append({"key": "sleep", "path": "/is_sleeping"})
    if driver == "llamacpp" and sleep == "router":
        probes.append({"key": "models", "path": "/models"})
    base = {"name": name, "pid": pid, "start_ticks": 5, "driver": driver, "sleep": sleep, "port": 7000 + pid % 100,
            "gpus": [0], "spec_hash": f"hash-{name}", "started_at": 1000.0 + pid, "probes": probes,
            "failures": 0, "last_failure_at": None, "sleep_level": None}
    return {**base, **kw}


def alive(m: dict, pids: list[int], probes: dict) -> dict:
    return {"meta": m, "alive": True, "leader": "alive", "state": "S", "pids": pids,
            "probes": {k: {"status": s, "body": b} for k, (s, b) in probes.items()}}


def smi_xml(gpus: list[tuple[str, int, int]], apps: list[tuple[int, int, str]]) -> str:
    """An ``nvidia-smi -q -x`` log: gpus as (uuid, total, used), apps as (pid, MiB, uuid)."""
    out = ["<nvidia_smi_log>"]
    for uuid, total, used in gpus:
        out.append(f"<gpu><product_name>NVIDIA GeForce RTX 4090</product_name><uuid>{uuid}</uuid>"
                   f"<fb_memory_usage><total>{total} MiB</total><used>{used} MiB</used></fb_memory_usage><processes>")
        out += [f"<process_info><pid>{p}</pid><type>C</type><used_memory>{mb} MiB</used_memory></process_info>"
                for p, mb, u in apps if u == uuid]
        out.append("</processes></gpu>")
    return "".join(out) + "</nvidia_smi_log>"


RAW = {
    "now": 1795600000.5,
    "hostname": "box",
    "boot_id": "b",
    "smi": {
        "ok": True,
        "rc": 0,
        "stderr": "",
        "stdout": smi_xml(
            [(G0, 24564, 19876), (G1, 24564, 4)],
            [(101, 18000, G0), (102, 900, G0), (103, 2100, G1), (104, 700, G1), (999, 512, G0)],
        ),
    },
    "services": {
        "chat": alive(
            meta("chat", "vllm", "l1", pid=101, gpus=[0]),
            [101, 102],
            {
                "health": (200, ""),
                "sleep": (200, '{"is_sleeping":false}'),
                "metrics": (200, sample("vllm_metrics_awake.txt")),
            },
        ),
        "vlm": alive(
            meta("vlm", "vllm", "l1", pid=103, gpus=[1], sleep_level="l1"),
            [103],
            {
                "health": (200, ""),
                "sleep": (200, '{"is_sleeping":true}'),
                "metrics": (200, sample("vllm_metrics_l1_grepped.txt")),
            },
        ),
        "code": alive(
            meta("code", "llamacpp", "router", pid=104, gpus=[1]),
            [104],
            {"health": (200, '{"status":"ok"}'), "models": (200, sample("llamacpp_models_unloaded.json"))},
        ),
        "loading": alive(
            meta("loading", "vllm", pid=105), [105], {"health": (0, "Connection refused"), "metrics": (0, "")}
        ),
        "sick": alive(meta("sick", "vllm", pid=106), [106], {"health": (503, ""), "metrics": (0, "")}),
        "emb": alive(
            meta("emb", "llamacpp", pid=107), [107], {"health": (503, sample("llamacpp_health_loading.json"))}
        ),
        "box": alive(meta("box", "docker", pid=108), [108], {"health": (200, "ok")}),
        "dead": {
            "meta": meta("dead", "vllm", pid=109, failures=2, last_failure_at=1795599990.0),
            "alive": False,
            "leader": "zombie",
            "state": "Z",
            "pids": [],
            "probes": {},
        },
        "broken": {
            "meta": {"name": "broken"},
            "alive": False,
            "state": "",
            "pids": [],
            "error": "unreadable record: Expecting value",
        },
    },
}


def test_statuses_from_liveness_and_probes():
    pod = parse_observation("box", RAW)
    got = {s.name: (s.status, s.sleep_level) for s in pod.services}
    assert got == {
        "chat": ("running", None),
        "vlm": ("sleeping", "l1"),
        "code": ("sleeping", "router"),
        "loading": ("starting", None),
        "sick": ("unhealthy", None),
        "emb": ("starting", None),
        "box": ("running", None),  # unknown driver: its health probe still tells
        "dead": ("failed", None),
        "broken": ("failed", None),
    }
    assert [s.name for s in pod.services] == sorted(got)
    assert "zombie" in pod.service("dead").message and "unreadable" in pod.service("broken").message


def test_gpus_vram_per_service_and_foreign():
    pod = parse_observation("box", RAW)
    assert [(g.index, g.total_mb, g.used_mb) for g in pod.gpus] == [(0, 24564, 19876), (1, 24564, 4)]
    assert pod.service("chat").vram_mb == ((0, 18900),)  # leader + its engine child
    assert pod.service("vlm").vram_mb == ((1, 2100),)
    assert pod.service("code").vram_mb == ((1, 700),)
    assert pod.service("dead").vram_mb == ()
    assert pod.foreign_mb == ((0, 512),)
    assert pod.foreign(0) == 512 and pod.foreign(1) == 0


def test_fields_from_the_record():
    pod = parse_observation("box", RAW)
    chat, dead = pod.service("chat"), pod.service("dead")
    assert (chat.spec_hash, chat.gpus, chat.pid, chat.port, chat.started_at) == ("hash-chat", (0,), 101, 7001, 1101.0)
    assert (dead.failures, dead.last_failure_at) == (2, 1795599990.0)
    assert pod.observed_at == 1795600000.5 and pod.reachable and pod.error == ""


def test_nvidia_smi_failure_leaves_no_gpus_and_says_why():
    raw = {**RAW, "smi": {"ok": False, "stdout": "", "stderr": "nvidia-smi: command not found", "rc": 127}}
    pod = parse_observation("box", raw)
    assert pod.gpus == () and pod.foreign_mb == () and "command not found" in pod.error
    assert pod.service("chat").vram_mb == () and pod.service("chat").status == "running"


def test_without_probes_the_record_tells_running_or_sleeping():
    raw = {"now": 1.0, "smi": {}, "services": {
        "a": {"meta": meta("a", "vllm"), "alive": True, "pids": [1]},
        "b": {"meta": meta("b", "vllm", "l1", sleep_level="l1"), "alive": True, "pids": [2]},
    }}
    pod = parse_observation("box", raw)
    assert [(s.status, s.sleep_level) for s in pod.services] == [("running", None), ("sleeping", "l1")]


def test_order_of_services_in_the_answer_does_not_matter():
    shuffled = {**RAW, "services": dict(reversed(list(RAW["services"].items())))}
    assert parse_observation("box", shuffled) == parse_observation("box", RAW)


async def test_observe_pod_one_round_trip():
    fake = FakeTransport().push_json(RAW)
    pod = await observe_pod(PodAgent(fake, pod="box", state_dir="/s"))
    assert pod == parse_observation("box", RAW) and len(fake.calls) == 1


async def test_observe_pod_unreachable_is_reported_not_raised():
    fake = FakeTransport().push(CommandResult(255, b"", b"ssh: connect to host 10.0.0.1 port 22: Connection refused\n"))
    pod = await observe_pod(PodAgent(fake, pod="far", state_dir="/s"))
    assert pod.reachable is False and pod.name == "far" and "Connection refused" in pod.error
    assert pod.services == ()


def test_the_cause_of_the_last_failed_start_and_the_field_digests_are_read_back():
    raw = dict(RAW)
    dead = dict(RAW["services"]["dead"])
    dead["meta"] = {
        **dead["meta"],
        "last_error": "not healthy after 6 s (not listening yet)",
        "last_log_line": "[x] [/path]",
        "extra": {"model": "m", "spec_fields": {"port": "ab12", "context": "cd34"}},
    }
    raw["services"] = {"dead": dead}
    got = parse_observation("box", raw).service("dead")
    assert (got.failures, got.last_error, got.last_log_line) == (
        2,
        "not healthy after 6 s (not listening yet)",
        "[x] [/path]",
    )
    assert got.spec_fields == (("context", "cd34"), ("port", "ab12"))
    old = parse_observation("box", RAW).service("chat")  # a record written before these fields existed
    assert (old.last_error, old.last_log_line, old.spec_fields) == ("", "", ())
