"""The llama.cpp sim server (single model and router) and the plain flavour, as real processes."""

from __future__ import annotations

import json
from pathlib import Path

from gpumod.sim.llamacpp_flavour import SWITCHES, VALUED
from gpumod.sim.runtime import pick_flags
from sim_helpers import ServerProc, SimPod, wait_for

LOADING = b'{"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}'


def models(srv: ServerProc) -> dict[str, dict]:
    status, body = srv.get("/models")
    assert status == 200
    return {m["id"]: m for m in json.loads(body)["data"]}


def test_single_model_answers_503_while_loading_then_ok(start_server, sim_pod: SimPod) -> None:
    srv = start_server(
        "llamacpp",
        [
            "-m",
            "/models/x.gguf",
            "--host",
            "127.0.0.1",
            "-c",
            "32768",
            "-ngl",
            "999",
            "-ctk",
            "q8_0",
            "-fa",
            "on",
        ],
        GPUMOD_SIM_LOAD_S="0.5",
        GPUMOD_SIM_VRAM_MB="19100",
    )
    assert wait_for(lambda: srv.get("/health")[0] != 0)  # listens at once
    assert srv.get("/health") == (503, LOADING)
    assert sim_pod.used() == 0
    assert srv.wait_status("/health", 200)
    assert srv.get("/health") == (200, b'{"status": "ok"}')
    assert sim_pod.used() == 19100
    status, body = srv.get("/v1/models")
    assert status == 200 and json.loads(body)["data"][0]["id"] == "/models/x.gguf"
    status, body = srv.post(
        "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 200 and json.loads(body)["choices"][0]["finish_reason"] == "stop"
    assert "CUDA0 model buffer size" in srv.stdout()


def test_single_model_dies_like_llamacpp_when_memory_is_short(
    start_server, sim_pod: SimPod, sleeper
) -> None:
    squatter = sleeper()
    sim_pod.gpus.allocate(squatter.pid, {0: 10000}, "squatter")
    srv = start_server(
        "llamacpp", ["-m", "/models/x.gguf", "-c", "32768"], GPUMOD_SIM_VRAM_MB="19100"
    )
    assert srv.proc.wait(timeout=5) == 1
    assert "cudaMalloc failed: out of memory" in srv.stderr()
    assert "main: exiting due to model loading error" in srv.stderr()
    assert sim_pod.used() == 10000


def test_router_loads_and_unloads_models(start_server, sim_pod: SimPod, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    for name in ("devstral.gguf", "qwen3.gguf", "notes.txt"):
        (models_dir / name).write_text("")
    srv = start_server(
        "llamacpp",
        [
            "--models-dir",
            str(models_dir),
            "--models-max",
            "1",
            "--no-models-autoload",
            "--host",
            "127.0.0.1",
        ],
        GPUMOD_SIM_VRAM_MB="19100",
        GPUMOD_SIM_LOAD_S="0.5",
    )
    assert srv.wait_status("/health", 200)
    assert wait_for(lambda: sim_pod.used() == 300)  # the router alone holds the residual
    listed = models(srv)
    assert sorted(listed) == ["devstral", "qwen3"]
    assert listed["devstral"]["status"]["value"] == "unloaded"
    assert listed["devstral"]["path"] == str(models_dir / "devstral.gguf")

    assert srv.post("/models/load", {"model": "devstral"}) == (200, b'{"success": true}')
    assert models(srv)["devstral"]["status"]["value"] == "loading"  # load answers before loading
    assert wait_for(lambda: models(srv)["devstral"]["status"]["value"] == "loaded")
    assert sim_pod.used() == 19100  # the whole awake footprint: router + model

    chat = {"model": "devstral", "messages": [{"role": "user", "content": "hi"}]}
    assert srv.post("/v1/chat/completions", chat)[0] == 200
    no_autoload = srv.post("/v1/chat/completions", chat | {"model": "qwen3"})
    assert no_autoload[0] == 400

    assert srv.post("/models/load", {"model": "qwen3"})[0] == 200  # models-max 1: evicts devstral
    assert wait_for(lambda: models(srv)["qwen3"]["status"]["value"] == "loaded")
    assert models(srv)["devstral"]["status"]["value"] == "unloaded"
    assert sim_pod.used() == 19100  # the whole awake footprint: router + model

    assert srv.post("/models/unload", {"model": "qwen3"}) == (200, b'{"success": true}')
    assert sim_pod.used() == 300
    assert srv.post("/models/unload", {"model": "qwen3"}) == (
        400,
        b'{"error": {"code": 400, "message": "model is not running", "type": "invalid_request_error"}}',
    )


def test_router_load_that_does_not_fit_is_marked_failed(
    start_server, sim_pod: SimPod, sleeper, tmp_path: Path
) -> None:
    srv = start_server(
        "llamacpp",
        ["--models-dir", str(tmp_path / "absent")],
        GPUMOD_SIM_VRAM_MB="19100",
        GPUMOD_SIM_SLEEP_MB="250",
    )
    assert srv.wait_status("/health", 200)
    assert wait_for(lambda: sim_pod.used() == 250)
    squatter = sleeper()
    sim_pod.gpus.allocate(squatter.pid, {0: 10000}, "squatter")
    assert srv.post("/models/load", {"model": "org/Big-GGUF:Q8_0"})[0] == 200
    assert wait_for(lambda: models(srv)["org/Big-GGUF:Q8_0"]["status"].get("failed") is True)
    assert models(srv)["org/Big-GGUF:Q8_0"]["status"] == {
        "value": "unloaded",
        "args": [],
        "failed": True,
        "exit_code": 1,
    }
    assert sim_pod.used() == 10250
    srv.proc.terminate()
    assert srv.proc.wait(timeout=2) == 0
    assert sim_pod.used() == 10000


def test_router_autoloads_on_request(start_server, sim_pod: SimPod, tmp_path: Path) -> None:
    srv = start_server("llamacpp", ["--models-dir", str(tmp_path)], GPUMOD_SIM_VRAM_MB="5000")
    assert srv.wait_status("/health", 200)
    status, body = srv.post(
        "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 200 and json.loads(body)["model"] == "tiny"
    assert models(srv)["tiny"]["status"]["value"] == "loaded"
    assert sim_pod.used() == 5000


def test_plain_app_is_unhealthy_while_loading_then_holds_its_vram(
    start_server, sim_pod: SimPod
) -> None:
    srv = start_server("plain", [], GPUMOD_SIM_LOAD_S="0.5", GPUMOD_SIM_VRAM_MB="2500")
    assert wait_for(lambda: srv.get("/health")[0] == 503)
    assert sim_pod.used() == 0
    assert srv.wait_status("/health", 200)
    assert sim_pod.used() == 2500
    srv.proc.terminate()
    assert srv.proc.wait(timeout=2) == 0
    assert sim_pod.used() == 0


def test_flag_picking_reads_exact_flags_only() -> None:
    argv = [
        "-m",
        "/m/x.gguf",
        "-ctk",
        "q8_0",
        "-cb",
        "-mg",
        "1",
        "--port=7070",
        "-c",
        "4096",
        "--tool-call-parser",
        "hermes",
        "--no-models-autoload",
    ]
    picked = pick_flags(argv, VALUED, SWITCHES)
    assert picked == {"model": "/m/x.gguf", "port": "7070", "ctx": "4096", "autoload": False}


def test_hf_repo_runs_a_single_model(start_server, sim_pod: SimPod) -> None:
    srv = start_server("llamacpp", ["-hf", "org/Model-GGUF:Q4_K_M", "-c", "8192"])
    assert srv.wait_status("/health", 200)
    assert json.loads(srv.get("/v1/models")[1])["data"][0]["id"] == "org/Model-GGUF:Q4_K_M"
    assert sim_pod.used() == 1000  # the default footprint
