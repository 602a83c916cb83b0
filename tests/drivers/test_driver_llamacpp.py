"""llama.cpp driver: single-model and router command lines, router calls, parse() on recorded answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.drivers.base import HttpAnswer, HttpCall, PodContext, Probe
from gpumod.drivers.llamacpp import LlamaCppDriver
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService

DATA = Path(__file__).parent / "data"
CTX = PodContext(pod="box")
llama = LlamaCppDriver()
MODEL = "Devstral-Small-2-24B-Instruct-Q4_K_M"


def single(**kw) -> ResolvedService:
    return ResolvedService(
        **{**dict(name="emb", driver="llamacpp", port=7072, model_path="/models/bge m3.gguf", context=8192), **kw}
    )


def router(**kw) -> ResolvedService:
    base = dict(
        name="code", driver="llamacpp", port=7070, models_dir="/models", model=MODEL, sleep="router", context=32768
    )
    return ResolvedService(**{**base, **kw})


def answer(name: str, status: int = 200) -> HttpAnswer:
    return HttpAnswer(status, (DATA / name).read_text())


def health_ok() -> HttpAnswer:
    return answer("llamacpp_health_ok.json")


def test_golden_single_model():
    launch = llama.launch(single(), (0,), CTX)
    assert launch.argv == (
        "llama-server", "-m", "/models/bge m3.gguf", "--host", "127.0.0.1", "--port", "7072",
        "-c", "8192", "-ngl", "999", "--fit", "off",
    )  # fmt: skip
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "0"),)
    assert launch.probes == (Probe("health", "/health"),)


def test_golden_router():
    launch = llama.launch(router(), (1,), CTX)
    assert launch.argv == (
        "llama-server", "--models-dir", "/models", "--models-max", "1", "--no-models-autoload",
        "--host", "127.0.0.1", "--port", "7070", "-c", "32768", "-ngl", "999", "--fit", "off",
    )  # fmt: skip
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "1"),)
    assert launch.probes == (Probe("health", "/health"), Probe("models", "/models"))


def test_args_override_short_and_long_spellings_and_remove_defaults():
    svc = single(
        args=(("ngl", 40), ("ctx-size", 4096), ("fit", None), ("jinja", True), ("-fa", "on"), ("n_gpu_layers", 41))
    )
    argv = llama.launch(svc, (0,), CTX).argv
    assert argv == (
        "llama-server", "-m", "/models/bge m3.gguf", "--host", "127.0.0.1", "--port", "7072",
        "-c", "4096", "-ngl", "41", "--jinja", "-fa", "on",
    )  # fmt: skip


def test_a_hugging_face_repo_without_a_file_uses_hf():
    argv = llama.launch(single(model_path=None, model="ggml-org/gemma-3-4b-it-GGUF:Q4_K_M"), (0,), CTX).argv
    assert argv[1:3] == ("-hf", "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M")
    with pytest.raises(GpumodError, match="model_path"):
        llama.launch(single(model_path=None), (0,), CTX)


def test_router_calls():
    load = HttpCall("POST", "/models/load", body={"model": MODEL}, timeout_s=60.0)
    assert llama.after_start(router()) == [load]
    assert llama.wake_calls(router()) == [load]
    assert llama.sleep_calls(router(), "router") == [
        HttpCall("POST", "/models/unload", body={"model": MODEL}, timeout_s=60.0)
    ]
    assert llama.after_start(single()) == []


def test_single_model_cannot_sleep():
    with pytest.raises(UnsupportedError):
        llama.sleep_calls(single(), "router")
    with pytest.raises(UnsupportedError):
        llama.wake_calls(single())


def test_parse_single_model_health():
    assert llama.parse("none", {"health": HttpAnswer(0, "refused")}).readiness == "refused"
    assert llama.parse("none", {"health": answer("llamacpp_health_loading.json", 503)}).readiness == "loading"
    assert llama.parse("none", {"health": health_ok()}).readiness == "ready"
    assert llama.parse("none", {"health": HttpAnswer(500, "boom")}).readiness == "error"


@pytest.mark.parametrize(
    "sample, readiness, level",
    [
        ("llamacpp_models_loaded.json", "ready", None),
        ("llamacpp_models_unloaded.json", "ready", "router"),
        ("llamacpp_models_sleeping.json", "ready", "router"),
        ("llamacpp_models_loading.json", "loading", None),
        ("llamacpp_models_downloading.json", "loading", None),
        ("llamacpp_models_failed.json", "error", None),
    ],
)
def test_parse_router_models(sample, readiness, level):
    state = llama.parse("router", {"health": health_ok(), "models": answer(sample)})
    assert (state.readiness, state.sleep_level) == (readiness, level)


def test_parse_router_failure_names_the_model_and_exit_code():
    state = llama.parse("router", {"health": health_ok(), "models": answer("llamacpp_models_failed.json")})
    assert MODEL in state.detail and "exit code 1" in state.detail


def test_parse_router_models_unanswered_is_loading():
    state = llama.parse("router", {"health": health_ok(), "models": HttpAnswer(0, "timed out")})
    assert state.readiness == "loading"
    assert llama.parse("router", {"health": health_ok(), "models": HttpAnswer(200, "<html>")}).readiness == "error"


def test_a_router_with_a_model_file_serves_its_folder_and_loads_it_by_file_name() -> None:
    # llama-server's router lists the files of --models-dir under their names without .gguf
    svc = ResolvedService(
        name="glm-code", driver="llamacpp", port=7070, sleep="router",
        model="mistralai/Devstral-Small-2-24B-Instruct",
        model_path="~/models/Devstral-Small-2-24B-Instruct-Q4_K_M.gguf",
    )
    driver = LlamaCppDriver()
    argv = driver.launch(svc, (0,), PodContext(pod="p")).argv
    assert argv[argv.index("--models-dir") + 1] == "~/models"
    assert "-m" not in argv
    (load,) = driver.after_start(svc)
    assert load.body == {"model": "Devstral-Small-2-24B-Instruct-Q4_K_M"}
    assert driver.sleep_calls(svc, "router")[0].body == load.body
