"""The vLLM sim server, as real processes over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import time

from gpumod.sim.gpu import proc_start_time
from sim_helpers import SimPod, wait_for

DEV = {"VLLM_SERVER_DEV_MODE": "1"}


def serve(util: str, *extra: str) -> list[str]:
    return [
        "serve",
        "Qwen/Qwen3-8B",
        "--host",
        "127.0.0.1",
        "--gpu-memory-utilization",
        util,
        "--max-model-len",
        "8192",
        "--tensor-parallel-size",
        "1",
        *extra,
        "--tool-call-parser",
        "hermes",
    ]


def test_refuses_connections_while_loading_then_is_healthy(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3"), GPUMOD_SIM_LOAD_S="0.6")
    time.sleep(0.25)
    assert srv.proc.poll() is None
    assert srv.get("/health") == (0, b"")  # connection refused: the engine is loading
    assert sim_pod.used() == 0
    assert srv.wait_status("/health", 200)
    assert srv.get("/health") == (200, b"")
    assert sim_pod.used() == int(0.3 * 24564)  # util x total = 7369 MiB
    assert sim_pod.smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits") == (
        f"{srv.pid}, 7369\n"
    )
    status, body = srv.get("/v1/models")
    card = json.loads(body)["data"][0]
    assert status == 200
    assert (card["id"], card["owned_by"], card["max_model_len"], card["object"]) == (
        "Qwen/Qwen3-8B",
        "vllm",
        8192,
        "model",
    )
    assert '"GET /health HTTP/1.1" 200' in srv.stdout()


def test_second_server_that_does_not_fit_fails_like_vllm(start_server, sim_pod: SimPod) -> None:
    first = start_server("vllm", serve("0.5"))
    assert first.wait_status("/health", 200)
    second = start_server("vllm", serve("0.6"))
    assert second.proc.wait(timeout=5) == 1
    assert (
        "ValueError: Free memory on device cuda:0 (11.99/23.99 GiB) on startup is less than desired "
        "GPU memory utilization (0.6, 14.39 GiB). Decrease GPU memory utilization or reduce GPU "
        "memory used by other processes.\n"
    ) in second.stderr()
    assert second.get("/health")[0] == 0
    assert sim_pod.used() == 12282  # only the first one


def test_sleep_l1_frees_to_the_residual_and_wake_reclaims(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3", "--enable-sleep-mode"), **DEV)
    assert srv.wait_status("/health", 200)
    assert srv.post("/sleep?level=1") == (200, b"")
    assert sim_pod.used() == 600
    assert srv.get("/is_sleeping") == (200, b'{"is_sleeping": true}')
    metrics = srv.get("/metrics")[1].decode()
    assert (
        'vllm:engine_sleep_state{engine="0",model_name="Qwen/Qwen3-8B",'
        'sleep_state="weights_offloaded"} 1.0'
    ) in metrics
    assert 'sleep_state="awake"} 0.0' in metrics
    assert srv.get("/health")[0] == 200  # a sleeping engine is healthy
    assert (
        srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0]
        == 503
    )
    assert srv.post("/wake_up") == (200, b"")
    assert sim_pod.used() == 7369
    assert srv.get("/is_sleeping") == (200, b'{"is_sleeping": false}')
    assert 'sleep_state="awake"} 1.0' in srv.get("/metrics")[1].decode()
    status, body = srv.post(
        "/v1/chat/completions",
        {"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "hi"}]},
    )
    answer = json.loads(body)
    assert status == 200 and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["role"] == "assistant"


def test_sleep_l2_keeps_less_and_sleep_mb_overrides(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3", "--enable-sleep-mode"), **DEV)
    assert srv.wait_status("/health", 200)
    assert srv.post("/sleep?level=2")[0] == 200
    assert sim_pod.used() == 400
    assert 'sleep_state="discard_all"} 1.0' in srv.get("/metrics")[1].decode()
    assert srv.post("/sleep?level=1")[0] == 200  # already asleep: a no-op
    assert sim_pod.used() == 400
    other = start_server(
        "vllm",
        serve("0.1", "--enable-sleep-mode"),
        GPUMOD_SIM_SLEEP_MB="150",
        GPUMOD_SIM_VRAM_MB="2000",
        **DEV,
    )
    assert other.wait_status("/health", 200)
    assert sim_pod.used() == 2400
    assert other.post("/sleep?level=1")[0] == 200
    assert sim_pod.used() == 550


def test_wake_fails_when_the_memory_was_taken(start_server, sim_pod: SimPod, sleeper) -> None:
    srv = start_server("vllm", serve("0.5", "--enable-sleep-mode"), **DEV)
    assert srv.wait_status("/health", 200)
    assert srv.post("/sleep?level=1")[0] == 200
    squatter = sleeper()
    sim_pod.gpus.allocate(squatter.pid, {0: 20000}, "squatter")
    status, body = srv.post("/wake_up")
    assert status == 500
    assert body.startswith(b"RuntimeError: CUDA Error: out of memory")
    assert srv.get("/is_sleeping")[1] == b'{"is_sleeping": true}'
    assert sim_pod.used() == 20600
    sim_pod.gpus.release(squatter.pid)
    assert srv.post("/wake_up")[0] == 200
    assert sim_pod.used() == 12282


def test_dev_endpoints_need_dev_mode_and_sleep_mode(start_server) -> None:
    plain = start_server("vllm", serve("0.1", "--enable-sleep-mode"))
    no_flag = start_server("vllm", serve("0.1"), **DEV)
    assert plain.wait_status("/health", 200) and no_flag.wait_status("/health", 200)
    assert plain.post("/sleep?level=1") == (404, b'{"detail": "Not Found"}')
    assert plain.get("/is_sleeping")[0] == 404
    status, body = no_flag.post("/sleep?level=1")
    assert status == 500 and b"--enable-sleep-mode" in body
    assert no_flag.get("/is_sleeping")[1] == b'{"is_sleeping": false}'


def test_sigterm_releases_memory_and_exits_0_promptly(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3"))
    assert srv.wait_status("/health", 200)
    assert sim_pod.used() == 7369
    t0 = time.monotonic()
    srv.proc.terminate()
    assert srv.proc.wait(timeout=2) == 0
    assert time.monotonic() - t0 < 1.0
    assert sim_pod.used() == 0
    assert list((sim_pod.dir / "alloc").iterdir()) == []
    loading = start_server("vllm", serve("0.3"), GPUMOD_SIM_LOAD_S="5")
    time.sleep(0.3)
    loading.proc.terminate()
    assert loading.proc.wait(timeout=2) == 0


def test_sigkill_leaves_a_zombie_whose_memory_is_ignored(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3"))
    assert srv.wait_status("/health", 200)
    os.kill(srv.pid, signal.SIGKILL)  # the test is its parent and does not reap it yet: a zombie
    assert wait_for(lambda: proc_start_time(srv.pid) is None)
    assert os.path.exists(f"/proc/{srv.pid}")
    assert sim_pod.used() == 0
    assert sim_pod.smi("--query-compute-apps=pid", "--format=csv,noheader") == ""


def test_failed_start_exits_1(start_server, sim_pod: SimPod) -> None:
    srv = start_server("vllm", serve("0.3"), GPUMOD_SIM_FAIL="start")
    assert srv.proc.wait(timeout=5) == 1
    assert "Engine core initialization failed" in srv.stderr()
    assert sim_pod.used() == 0


def test_tensor_parallel_takes_every_gpu_of_the_group(
    start_server, sim_pod: SimPod, tmp_path
) -> None:
    from gpumod.sim.pod import ensure_sim_pod

    ensure_sim_pod(sim_pod.dir, [("NVIDIA GeForce RTX 4090", 24564)] * 3)
    srv = start_server(
        "vllm", serve("0.5", "--tensor-parallel-size", "2"), CUDA_VISIBLE_DEVICES="2,1"
    )
    assert srv.wait_status("/health", 200)
    assert [sim_pod.used(g) for g in (0, 1, 2)] == [0, 12282, 12282]


def test_l2_wake_by_tags_is_asleep_until_the_kv_cache_is_back(
    start_server, sim_pod: SimPod
) -> None:
    srv = start_server("vllm", serve("0.3", "--enable-sleep-mode"), **DEV)
    assert srv.wait_status("/health", 200)
    assert srv.post("/sleep?level=2")[0] == 200
    assert srv.post("/wake_up?tags=weights") == (200, b"")
    assert sim_pod.used() == 7369  # the memory comes back with the first tag
    assert srv.get("/is_sleeping")[1] == b'{"is_sleeping": true}'
    assert srv.post("/collective_rpc", {"method": "reload_weights"})[0] == 200
    assert srv.post("/wake_up?tags=kv_cache") == (200, b"")
    assert srv.post("/reset_prefix_cache") == (200, b"")
    assert srv.get("/is_sleeping")[1] == b'{"is_sleeping": false}'
    assert 'sleep_state="awake"} 1.0' in srv.get("/metrics")[1].decode()
