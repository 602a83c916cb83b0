"""vLLM driver: golden command lines, env, sleep/wake calls, and parse() on recorded answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.drivers.base import HttpAnswer, HttpCall, PodContext, Probe
from gpumod.drivers.vllm import VllmDriver, metrics_sleep_level
from gpumod.errors import UnsupportedError
from gpumod.spec.resolved import ResolvedService

DATA = Path(__file__).parent / "data"
CTX = PodContext(pod="box")
SIM_SERVER = ("/venv/bin/python", "-m", "gpumod.sim.server", "--flavour", "vllm", "--")
SIM_CTX = PodContext(pod="sim", binaries=(("vllm", SIM_SERVER),))
vllm = VllmDriver()


def chat(**kw) -> ResolvedService:
    base = dict(
        name="chat",
        driver="vllm",
        port=7071,
        model="Qwen/Qwen3-VL-2B-Instruct",
        gpu_memory_utilization=0.35,
        context=1024,
        sleep="l1",
        args=(("max-num-seqs", 4), ("enforce_eager", True), ("dtype", "bfloat16")),
    )
    return ResolvedService(**{**base, **kw})


def answer(name: str, status: int = 200) -> HttpAnswer:
    return HttpAnswer(status, (DATA / name).read_text())


def test_golden_argv_and_env_with_sleep():
    launch = vllm.launch(chat(), (1,), CTX)
    assert launch.argv == (
        "vllm", "serve", "Qwen/Qwen3-VL-2B-Instruct",
        "--host", "127.0.0.1", "--port", "7071",
        "--gpu-memory-utilization", "0.35",
        "--max-model-len", "1024",
        "--enable-sleep-mode",
        "--max-num-seqs", "4", "--enforce-eager", "--dtype", "bfloat16",
    )  # fmt: skip
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "1"), ("VLLM_SERVER_DEV_MODE", "1"))
    assert (launch.name, launch.port, launch.gpus, launch.driver, launch.sleep) == ("chat", 7071, (1,), "vllm", "l1")
    assert launch.spec_hash == chat().spec_hash()
    assert launch.probes == (
        Probe("health", "/health"),
        Probe("sleep", "/is_sleeping"),
        Probe("metrics", "/metrics", grep="vllm:engine_sleep_state"),
    )


def test_minimal_service_without_sleep_has_no_dev_mode_and_no_sleep_probe():
    svc = ResolvedService(name="emb", driver="vllm", port=8001, model="BAAI/bge-m3")
    launch = vllm.launch(svc, (0,), CTX)
    assert launch.argv == ("vllm", "serve", "BAAI/bge-m3", "--host", "127.0.0.1", "--port", "8001")
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "0"),)
    assert [p.key for p in launch.probes] == ["health", "metrics"]


def test_tensor_parallel_lists_exactly_the_chosen_gpus():
    launch = vllm.launch(chat(gpu_count=2, sleep="none", args=()), (2, 3), CTX)
    assert launch.argv[-2:] == ("--tensor-parallel-size", "2")
    assert dict(launch.env)["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_args_override_in_place_without_stray_values():
    svc = chat(
        args=(("max_model_len", 8192), ("--gpu-memory-utilization", 0.5), ("enable-sleep-mode", False), ("seed", None))
    )
    argv = vllm.launch(svc, (0,), CTX).argv
    assert argv == (
        "vllm", "serve", "Qwen/Qwen3-VL-2B-Instruct", "--host", "127.0.0.1", "--port", "7071",
        "--gpu-memory-utilization", "0.5", "--max-model-len", "8192",
    )  # fmt: skip
    assert "1024" not in argv and "0.35" not in argv


def test_list_args_repeat_the_flag():
    argv = vllm.launch(chat(args=(("lora-modules", ["a=/l/a", "b=/l/b"]),)), (0,), CTX).argv
    assert argv[-4:] == ("--lora-modules", "a=/l/a", "--lora-modules", "b=/l/b")


def test_env_cannot_override_the_gpu_mask_but_adds_the_rest():
    svc = chat(env=(("CUDA_VISIBLE_DEVICES", "0,1,2,3"), ("HF_HUB_ENABLE_HF_TRANSFER", "1")))
    env = dict(vllm.launch(svc, (1,), CTX).env)
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "VLLM_SERVER_DEV_MODE": "1", "HF_HUB_ENABLE_HF_TRANSFER": "1"}


def test_model_id_with_spaces_and_semicolon_stays_one_item():
    tricky = "org/my model; rm -rf / $(id)"
    argv = vllm.launch(chat(model=tricky), (0,), CTX).argv
    assert argv[2] == tricky and argv.count(tricky) == 1


def test_sim_pod_swaps_only_the_binary():
    real = vllm.launch(chat(), (0,), CTX).argv
    sim = vllm.launch(chat(), (0,), SIM_CTX).argv
    assert sim == ("/venv/bin/python", "-m", "gpumod.sim.server", "--flavour", "vllm", "--") + real[1:]


def test_sleep_and_wake_calls():
    assert vllm.sleep_calls(chat(), "l1") == [HttpCall("POST", "/sleep?level=1", timeout_s=300.0)]
    assert vllm.sleep_calls(chat(sleep="l2"), "l2")[0].path == "/sleep?level=2"
    assert [c.path for c in vllm.wake_calls(chat())] == ["/wake_up"]
    l2 = vllm.wake_calls(chat(sleep="l2"))
    assert [(c.method, c.path, c.body) for c in l2] == [
        ("POST", "/wake_up?tags=weights", None),
        ("POST", "/collective_rpc", {"method": "reload_weights"}),
        ("POST", "/wake_up?tags=kv_cache", None),
        ("POST", "/reset_prefix_cache", None),
    ]
    assert len(vllm.wake_calls(chat(sleep="l1"), level="l2")) == 4  # slept deeper than its spec
    assert vllm.after_start(chat()) == []


def test_sleep_without_sleep_mode_is_unsupported():
    with pytest.raises(UnsupportedError):
        vllm.sleep_calls(chat(sleep="none"), "l1")
    with pytest.raises(UnsupportedError):
        vllm.wake_calls(chat(sleep="none"))


def test_parse_refused_means_still_loading():
    state = vllm.parse("l1", {"health": HttpAnswer(0, "[Errno 111] Connection refused")})
    assert state.readiness == "refused"
    assert vllm.parse("l1", {}).readiness == "refused"


def test_parse_awake():
    state = vllm.parse(
        "l1",
        {
            "health": HttpAnswer(200, ""),
            "sleep": answer("vllm_is_sleeping_false.json"),
            "metrics": answer("vllm_metrics_awake.txt"),
        },
    )
    assert (state.readiness, state.sleep_level) == ("ready", None)


def test_parse_l1_from_is_sleeping_and_metrics():
    state = vllm.parse(
        "l1",
        {
            "health": HttpAnswer(200, ""),
            "sleep": answer("vllm_is_sleeping_true.json"),
            "metrics": answer("vllm_metrics_l1.txt"),
        },
    )
    assert (state.readiness, state.sleep_level) == ("ready", "l1")


def test_parse_l2_from_metrics_alone():
    state = vllm.parse("l2", {"health": HttpAnswer(200, ""), "metrics": answer("vllm_metrics_l2.txt")})
    assert (state.readiness, state.sleep_level) == ("ready", "l2")


def test_parse_the_grepped_metrics_the_agent_sends():
    state = vllm.parse("l1", {"health": HttpAnswer(200, ""), "metrics": answer("vllm_metrics_l1_grepped.txt")})
    assert state.sleep_level == "l1"


def test_parse_is_sleeping_without_gauge_falls_back_to_the_spec_level():
    answers = {
        "health": HttpAnswer(200, ""),
        "sleep": answer("vllm_is_sleeping_true.json"),
        "metrics": answer("vllm_metrics_no_sleep_gauge.txt"),
    }
    assert vllm.parse("l2", answers).sleep_level == "l2"
    assert vllm.parse("none", answers).sleep_level == "l1"


def test_parse_engine_dead_is_an_error():
    state = vllm.parse("l1", {"health": HttpAnswer(503, "")})
    assert state.readiness == "error" and "503" in state.detail


def test_metrics_sleep_level_reads_every_engine():
    assert metrics_sleep_level(answer("vllm_metrics_two_engines.txt")) == ("l2", True)
    assert metrics_sleep_level(answer("vllm_metrics_awake.txt")) == (None, True)
    assert metrics_sleep_level(answer("vllm_metrics_no_sleep_gauge.txt")) == (None, False)
    assert metrics_sleep_level(HttpAnswer(0, "")) == (None, False)


def test_parse_a_wake_in_flight_is_still_asleep():
    """/is_sleeping already false but the gauge still says offloaded: not awake yet."""
    answers = {
        "health": HttpAnswer(200, ""),
        "sleep": answer("vllm_is_sleeping_false.json"),
        "metrics": answer("vllm_metrics_l1.txt"),
    }
    assert vllm.parse("l1", answers).sleep_level == "l1"


def test_within_budget_pins_the_share_of_the_smallest_gpu():
    # vLLM sizes itself from gpu_memory_utilization x total: a vram_mb budget becomes that share
    budgeted = chat(gpu_memory_utilization=None, vram_mb=7000)
    pinned = vllm.within_budget(budgeted, 7000, [24576, 16384])
    assert pinned.gpu_memory_utilization == 0.428  # ceil(7000 / 16384, 3 places)
    assert "--gpu-memory-utilization" in vllm.launch(pinned, (0, 1), CTX).argv
    assert vllm.within_budget(budgeted, 40000, [24576]).gpu_memory_utilization == 1.0
    assert vllm.within_budget(chat(), 7000, [24576]) == chat()  # a share the spec set is kept
    assert vllm.within_budget(budgeted, 7000, []) == budgeted  # no GPU known: left to vLLM


def test_a_model_with_a_revision_serves_the_repo_at_that_revision():
    from gpumod.reach import served_model

    svc = ResolvedService(name="emb", driver="vllm", port=8001, model="acme/emb@v2")
    assert vllm.launch(svc, (0,), CTX).argv == (
        "vllm", "serve", "acme/emb", "--host", "127.0.0.1", "--port", "8001", "--revision", "v2")
    assert served_model(svc) == "acme/emb"  # vLLM serves it under the repo id
