"""Presets: every shipped file loads and resolves; merging, config choice and the no-fallback rule."""

from __future__ import annotations

from importlib import resources

import pytest

from gpumod.errors import SpecError
from gpumod.spec import PresetCatalog, resolve_service
from gpumod.spec.models import NAME_RE, PresetConfig, PresetSpec, ServiceSpec

# pi's src/models.json (github.com/badlogic/pi-mono, packages/pods): HF id -> the (count, types) of its configs.
PI_MODELS: dict[str, set[tuple[int, tuple[str, ...]]]] = {
    "Qwen/Qwen2.5-Coder-32B-Instruct": {(1, ("H100", "H200")), (2, ("H100", "H200"))},
    "Qwen/Qwen3-Coder-30B-A3B-Instruct": {(1, ("H100", "H200")), (2, ("H100", "H200"))},
    "Qwen/Qwen3-Coder-30B-A3B-Instruct-FP8": {(1, ("H100", "H200"))},
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": {(8, ("H200", "H20"))},
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": {(8, ("H200", "H20"))},
    "openai/gpt-oss-20b": {(1, ("H100", "H200")), (1, ("B200",))},
    "openai/gpt-oss-120b": {(n, ("H100", "H200")) for n in (1, 2, 4, 8)} | {(1, ("B200",)), (2, ("B200",))},
    "zai-org/GLM-4.5": {(16, ("H100",)), (8, ("H200",))},
    "zai-org/GLM-4.5-FP8": {(8, ("H100",)), (4, ("H200",))},
    "zai-org/GLM-4.5-Air-FP8": {(2, ("H100",)), (1, ("H200",))},
    "zai-org/GLM-4.5-Air": {(2, ("H100", "H200")), (1, ("H200",))},
    "moonshotai/Kimi-K2-Instruct": {(16, ("H200", "H20"))},
}

CATALOG = PresetCatalog.load()


def test_pis_model_list_is_complete_with_every_config() -> None:
    by_model = {p.model: p for p in CATALOG.presets}
    for model, configs in PI_MODELS.items():
        assert model in by_model, f"pi's {model} has no preset"
        preset = by_model[model]
        assert preset.driver == "vllm"
        assert {(c.gpu_count, tuple(c.gpu_types)) for c in preset.configs} == configs, model


def test_pi_presets_keep_their_tool_parsers_and_env() -> None:
    qwen = CATALOG.get("qwen3-coder-480b-a35b-fp8")
    assert qwen is not None
    cfg = qwen.configs[0]
    assert cfg.args["data-parallel-size"] == 8 and cfg.args["enable-expert-parallel"] is True
    assert cfg.args["tensor-parallel-size"] == 1 and cfg.env == {"VLLM_USE_DEEP_GEMM": "1"}
    glm = CATALOG.get("glm-4.5-air-fp8")
    assert glm is not None and all(c.args["tool-call-parser"] == "glm45" for c in glm.configs)
    assert CATALOG.get("kimi-k2").configs[0].args["trust-remote-code"] is True  # type: ignore[union-attr]


@pytest.mark.parametrize("preset", CATALOG.presets, ids=lambda p: p.name)
def test_every_preset_is_described_and_named_well(preset: PresetSpec) -> None:
    assert NAME_RE.match(preset.name)
    assert preset.role and preset.description and "\n" not in preset.description
    assert preset.driver is not None and preset.port is not None


def _gpu_name(config: PresetConfig) -> str:
    return f"NVIDIA {config.gpu_types[0]} 80GB HBM3" if config.gpu_types else "NVIDIA GeForce RTX 4090"


@pytest.mark.parametrize("preset", CATALOG.presets, ids=lambda p: p.name)
def test_every_preset_resolves_for_each_of_its_configs(preset: PresetSpec) -> None:
    configs = preset.configs or [None]
    for config in configs:
        gpus = config.gpu_count if config else None
        gpu_name = _gpu_name(config) if config else "NVIDIA GeForce RTX 4090"
        svc = ServiceSpec(kind="Service", name="s", preset=preset.name, gpus=gpus)
        resolved = resolve_service(svc, CATALOG, gpu_name=gpu_name, source="x.yaml:1")
        assert resolved.driver == preset.driver and resolved.model == preset.model
        assert resolved.gpu_count == (config.gpu_count if config else 1)
        args = dict(resolved.args)
        if config is not None:
            expected = {k: v for k, v in config.args.items() if k not in ("gpu-memory-utilization", "max-model-len")}
            assert {k: args[k] for k in expected} == expected
            assert set(config.env.items()) <= set(resolved.env)
        assert resolved.vram_mb or resolved.gpu_memory_utilization or resolved.weights_mb, "no VRAM figure"


def test_presets_are_read_through_importlib_resources_including_subfolders() -> None:
    root = resources.files("gpumod.presets")
    folders = {e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("__")}
    assert {"llm", "embedding", "reranker", "speech"} <= folders
    files = [f for d in folders for f in (root / d).iterdir() if f.name.endswith(".yaml")]
    assert len(files) == len(CATALOG.presets)
    assert CATALOG.sources["bge-m3"] == "presets/embedding/bge-m3.yaml:4"


def test_seed_presets() -> None:
    dev = CATALOG.get("devstral-small-2")
    assert dev is not None
    assert (dev.driver, dev.sleep, dev.port, dev.vram_mb, dev.context, dev.kv_mb_per_1k, dev.role) == (
        "llamacpp", "router", 7070, 19100, 32768, 170, "code",
    )
    chat = CATALOG.get("qwen3-vl-2b-instruct")
    assert chat is not None and (chat.sleep, chat.vram_mb, chat.gpu_memory_utilization, chat.context) == (
        "l1",
        None,
        0.35,
        1024,
    )  # util x total: vLLM reserves a share of the total
    assert len(CATALOG.by_role("embedding")) >= 2
    rerankers = sorted(CATALOG.by_role("reranker"), key=lambda p: p.vram_mb or 0)
    assert len(rerankers) >= 2 and all(r.sleep == "l2" for r in rerankers)
    asr = CATALOG.get("qwen3-asr")
    assert asr is not None and asr.driver == "fastapi" and asr.command and "{port}" in asr.command


# --- merging -----------------------------------------------------------------------------------

TOY = PresetCatalog(
    (
        PresetSpec(
            name="toy",
            driver="vllm",
            model="org/toy",
            port=8000,
            gpu_memory_utilization=0.9,
            context=4096,
            sleep="l1",
            args={"dtype": "bfloat16", "enforce-eager": True},
            env={"A": "1", "B": "2"},
            health={"path": "/ready", "startup_timeout_s": 300},
            configs=[
                PresetConfig(
                    gpu_count=1, gpu_types=["H100", "H200"], args={"tool-call-parser": "hermes"}, vram_mb=70000
                ),
                PresetConfig(gpu_count=1, gpu_types=["B200"], env={"B": "b200"}),
                PresetConfig(
                    gpu_count=2,
                    gpu_types=["H100"],
                    args={"tensor-parallel-size": 2, "gpu-memory-utilization": 0.94, "max-model-len": 32000},
                ),
            ],
        ),
        PresetSpec(name="bare", driver="command", command=["srv", "{port}"], port=9000, vram_mb=100),
    )
)


def resolve(gpu_name: str | None = "NVIDIA H100 80GB HBM3", **fields):
    svc = ServiceSpec(kind="Service", name="s", **fields)
    return resolve_service(svc, TOY, gpu_name=gpu_name, source="specs/s.yaml:3")


def test_service_fields_override_the_preset_and_dicts_merge_key_by_key() -> None:
    r = resolve(
        preset="toy", port=7001, args={"dtype": "float16", "enforce-eager": None, "max-num-seqs": 4}, env={"B": "x"}
    )
    assert r.port == 7001 and r.model == "org/toy" and r.sleep == "l1" and r.preset == "toy"
    assert dict(r.args) == {"dtype": "float16", "max-num-seqs": 4, "tool-call-parser": "hermes"}
    assert dict(r.env) == {"A": "1", "B": "x"}
    assert r.vram_mb == 70000  # from the H100 config
    assert (r.health_path, r.startup_timeout_s) == ("/ready", 300)


def test_the_service_vram_beats_the_configs() -> None:
    assert resolve(preset="toy", vram_mb=5000).vram_mb == 5000


def test_health_merges_field_by_field() -> None:
    r = resolve(preset="toy", health={"startup_timeout_s": 60})
    assert (r.health_path, r.startup_timeout_s) == ("/ready", 60)


def test_config_args_for_fields_are_lifted_and_a_service_can_override_them() -> None:
    r = resolve(preset="toy", gpus=2)
    assert (r.gpu_memory_utilization, r.context, r.gpu_count) == (0.94, 32000, 2)
    assert dict(r.args) == {"dtype": "bfloat16", "enforce-eager": True, "tensor-parallel-size": 2}
    r = resolve(preset="toy", gpus=2, context=8192, args={"gpu_memory_utilization": 0.5})
    assert (r.gpu_memory_utilization, r.context) == (0.5, 8192)
    assert "gpu_memory_utilization" not in dict(r.args)
    r = resolve(preset="toy", gpus=2, args={"max-model-len": None})
    assert r.context is None


@pytest.mark.parametrize(
    ("gpu_name", "expected_env_b", "expected_vram"),
    [
        ("NVIDIA H100 80GB HBM3", "2", 70000),
        ("nvidia h200", "2", 70000),  # case-insensitive substring
        ("NVIDIA B200", "b200", None),
        (None, "2", 70000),  # GPU unknown: the first config for the count
    ],
)
def test_config_choice_by_gpu_name_and_count(
    gpu_name: str | None, expected_env_b: str, expected_vram: int | None
) -> None:
    r = resolve(gpu_name=gpu_name, preset="toy")
    assert dict(r.env)["B"] == expected_env_b and r.vram_mb == expected_vram


def test_no_silent_fallback_to_another_gpu_type() -> None:
    with pytest.raises(SpecError) as info:
        resolve(gpu_name="NVIDIA GeForce RTX 4090", preset="toy")
    assert [str(p) for p in info.value.problems] == [
        "specs/s.yaml:3: preset toy has no config for 1 x NVIDIA GeForce RTX 4090; it has: 1 x H100/H200, "
        "1 x B200, 2 x H100. Use GPUs it supports, set gpus to one of those counts, or pick another preset"
    ]
    with pytest.raises(SpecError) as info:
        resolve(gpu_name="NVIDIA H200", preset="toy", gpus=[0, 1])
    assert "no config for 2 x NVIDIA H200;" in info.value.problems[0].message
    with pytest.raises(SpecError) as info:
        resolve(gpu_name=None, preset="toy", gpus=3)
    assert "no config for 3 GPU(s);" in info.value.problems[0].message


def test_defaults_and_pinned_gpus() -> None:
    r = resolve(preset="bare", gpus=[1, 3])
    assert (r.sleep, r.gpu_count, r.pinned_gpus, r.health_path, r.startup_timeout_s) == (
        "none",
        2,
        (1, 3),
        "/health",
        120,
    )
    assert (r.stop_timeout_s, r.drift, r.command, r.source) == (30.0, "correct", ("srv", "{port}"), "specs/s.yaml:3")
    r = resolve(driver="command", command=["x"], port=1, vram_mb=1)
    assert (r.gpu_count, r.pinned_gpus, r.preset, r.args, r.env) == (1, None, None, (), ())


def test_resolution_errors_name_the_service_source() -> None:
    with pytest.raises(SpecError) as info:
        resolve(model="m")
    assert [str(p) for p in info.value.problems] == [
        "specs/s.yaml:3: service s has no driver; set driver: vllm, llamacpp, fastapi or command",
        "specs/s.yaml:3: service s has no port; set port: <1-65535>",
    ]
    with pytest.raises(SpecError) as info:
        resolve(preset="toyy")
    assert [str(p) for p in info.value.problems] == ["specs/s.yaml:3: unknown preset 'toyy'; did you mean 'toy'?"]


def test_a_resolved_service_is_hashable_and_its_hash_ignores_arg_order() -> None:
    a = resolve(preset="toy", args={"x": [1, 2], "y": True})
    b = resolve(preset="toy", args={"y": True, "x": [1, 2]})
    assert hash(a) == hash(b) and a.spec_hash() == b.spec_hash()
    assert resolve(preset="toy", args={"y": False}).spec_hash() != a.spec_hash()


def test_catalog_from_texts_reports_bad_presets_with_lines() -> None:
    with pytest.raises(SpecError) as info:
        PresetCatalog.from_texts(
            [
                ("p/a.yaml", "name: a\ndriver: vllm\nport: 1\n"),
                ("p/b.yaml", "name: a\ndriver: vllm\n"),
                ("p/c.yaml", "name: c\ndriver: vlm\nconfigs:\n  - gpu_count: 0\n"),
                ("p/d.yaml", "name: d\n---\nname: e\n"),
            ]
        )
    assert [str(p) for p in info.value.problems] == [
        "p/b.yaml:1: preset 'a' is also defined at p/a.yaml:1",
        "p/c.yaml:2: driver: input should be 'vllm', 'llamacpp', 'fastapi', 'command' or 'docker', got 'vlm'",
        "p/c.yaml:4: configs[0].gpu_count: input should be greater than or equal to 1, got 0",
        "p/d.yaml:1: a preset file holds exactly one preset, found 2",
    ]


def test_every_packaged_preset_file_is_named_after_its_preset() -> None:
    """The packaged catalog reads one file for ``get(name)``: ``<name>.yaml`` (issue 7, P7)."""
    for name, source in PresetCatalog.load().sources.items():
        assert source.rsplit(":", 1)[0].rsplit("/", 1)[1] == f"{name}.yaml", source


def test_the_packaged_catalog_reads_only_the_presets_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpumod.spec import presets as presets_module

    presets_module._packaged.cache_clear()  # a fresh packaged catalog (cleared again at the end)
    read: list[str] = []
    real = PresetCatalog.from_texts.__func__  # type: ignore[attr-defined]

    def spy(cls: type[PresetCatalog], files):  # type: ignore[no-untyped-def]
        files = list(files)
        read.extend(path for path, _ in files)
        return real(cls, files)

    monkeypatch.setattr(PresetCatalog, "from_texts", classmethod(spy))
    lazy = PresetCatalog.load()
    assert lazy.get("bge-m3") == CATALOG.get("bge-m3") and "qwen3-asr" in lazy
    assert read == ["presets/embedding/bge-m3.yaml", "presets/speech/qwen3-asr.yaml"]
    # what needs every preset, or a name no file has, reads the whole tree, with its checks
    assert lazy.get("no-such-preset") is None and len(read) == 2 + len(CATALOG.presets)
    assert lazy.names() == CATALOG.names() and lazy.sources == CATALOG.sources
    assert lazy.by_role("embedding") == CATALOG.by_role("embedding") and lazy == CATALOG
    presets_module._packaged.cache_clear()


def test_a_packaged_preset_named_unlike_its_file_is_still_found(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from gpumod.spec.presets import _PackagedCatalog

    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "a.yaml").write_text("name: b\ndriver: vllm\nmodel: m\nrole: chat\ndescription: d\n")
    (tmp_path / "llm" / "b.yaml").write_text("name: a\ndriver: vllm\nmodel: m\nrole: chat\ndescription: d\n")
    files = [(f"presets/llm/{p.name}", p) for p in sorted(Path(tmp_path / "llm").iterdir())]
    lazy = _PackagedCatalog(files)
    assert lazy.get("a") is not None and lazy.sources["a"] == "presets/llm/b.yaml:1"
    assert lazy.get("b") == PresetCatalog.from_texts((p, f.read_text()) for p, f in files).get("b")
