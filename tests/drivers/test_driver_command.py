"""The command/fastapi driver, the flag map and the driver registry."""

from __future__ import annotations

import pytest

from gpumod.drivers.base import HttpAnswer, PodContext, Probe
from gpumod.drivers.command import CommandDriver
from gpumod.drivers.flags import Flags
from gpumod.drivers.llamacpp import LlamaCppDriver
from gpumod.drivers.registry import driver_for
from gpumod.drivers.vllm import VllmDriver
from gpumod.errors import GpumodError, UnsupportedError
from gpumod.spec.resolved import ResolvedService

CTX = PodContext(pod="box", python="/opt/py/bin/python3")


def asr(**kw) -> ResolvedService:
    base = dict(
        name="asr",
        driver="fastapi",
        port=9000,
        model="Qwen/Qwen3-ASR 1.7B; x",
        command=("{python}", "-m", "uvicorn", "app:app", "--port", "{port}", "--model={model}"),
        health_path="/healthz",
        env=(("ASR_BATCH", "4"),),
        cwd="~/asr",
    )
    return ResolvedService(**{**base, **kw})


def test_golden_command_with_substitutions_and_no_shell():
    launch = driver_for("fastapi").launch(asr(), (0,), CTX)
    assert launch.argv == (
        "/opt/py/bin/python3",
        "-m",
        "uvicorn",
        "app:app",
        "--port",
        "9000",
        "--model=Qwen/Qwen3-ASR 1.7B; x",
    )
    assert launch.env == (("CUDA_VISIBLE_DEVICES", "0"), ("ASR_BATCH", "4"))
    assert launch.probes == (Probe("health", "/healthz"),)
    assert (launch.cwd, launch.sleep, launch.driver) == ("~/asr", "none", "fastapi")


def test_command_is_required():
    with pytest.raises(GpumodError, match="command"):
        CommandDriver().launch(asr(command=None), (0,), CTX)


def test_command_services_cannot_sleep():
    with pytest.raises(UnsupportedError):
        CommandDriver().sleep_calls(asr(), "l1")
    with pytest.raises(UnsupportedError):
        CommandDriver().wake_calls(asr())
    assert CommandDriver().after_start(asr()) == []


@pytest.mark.parametrize(
    "status, readiness",
    [(0, "refused"), (200, "ready"), (204, "ready"), (503, "loading"), (404, "error"), (500, "error")],
)
def test_parse_health(status, readiness):
    assert CommandDriver().parse("none", {"health": HttpAnswer(status, "")}).readiness == readiness


def test_registry():
    assert isinstance(driver_for("vllm"), VllmDriver)
    assert isinstance(driver_for("llamacpp"), LlamaCppDriver)
    assert driver_for("command").name == "command" and driver_for("fastapi").name == "fastapi"
    for name in ("sglang",):
        with pytest.raises(UnsupportedError, match=name):
            driver_for(name)


def test_flags_keep_place_and_spelling_when_overridden():
    flags = Flags(aliases={"c": "ctx-size"}, short=("c",))
    flags.set("c", "8192")
    flags.set("port", "1")
    flags.update([("ctx_size", 4096), ("--port", 2), ("verbose", True), ("quiet", False), ("x", "y")])
    assert flags.render() == ["-c", "4096", "--port", "2", "--verbose", "-x", "y"]
