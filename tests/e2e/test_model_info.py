"""`gpumod model info` (and the MCP tool `model_info`, the seed's `model_info(model_id)`): the
presets and services serving a model, the pods' caches and the hub's sizes and KV estimate —
with the real CLI on the sim pod, a local hub over real HTTP (HF_ENDPOINT) and a real HF cache
layout on the pod; an unreachable hub still answers with the local facts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from e2e_helpers import Gpumod
from testkit import free_port

from gpumod.ops.model_info import kv_mb_per_1k, weights_bytes
from infra.hubserver import HubRepo, HubServer

pytestmark = pytest.mark.e2e

REPO = "Qwen/Qwen3-VL-2B-Instruct"  # what specs/' chat and hyde serve (preset qwen3-vl-2b-instruct)
QWEN3_8B = {"num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "hidden_size": 4096, "torch_dtype": "bfloat16"}


def test_kv_cache_per_1k_tokens_from_a_config() -> None:
    # 2 (K and V) x 36 layers x 8 KV heads x 128 x 2 bytes = 147,456 bytes/token = 140.6 MiB per 1k
    assert kv_mb_per_1k(QWEN3_8B) == 140.7
    assert kv_mb_per_1k({"text_config": QWEN3_8B, "architectures": ["X"]}) == 140.7  # vision-language
    no_gqa = {k: v for k, v in QWEN3_8B.items() if k not in ("num_key_value_heads", "head_dim")}
    assert kv_mb_per_1k(no_gqa) == 562.5  # every head keeps K and V; head_dim = 4096 / 32
    assert kv_mb_per_1k({**QWEN3_8B, "torch_dtype": "float32"}) == 281.3
    assert kv_mb_per_1k({"model_type": "bert"}) is None
    assert kv_mb_per_1k({**QWEN3_8B, "num_hidden_layers": "many"}) is None


def test_weights_are_the_safetensors_else_the_bin_files() -> None:
    assert weights_bytes([("a.safetensors", 5), ("b.safetensors", 6), ("x.bin", 100), ("config.json", 1)]) == 11
    assert weights_bytes([("pytorch_model.bin", 100), ("config.json", 1)]) == 100
    assert weights_bytes([("README.md", 1)]) == 0


def _cache_with(root: Path, repo: str, size: int) -> Path:
    """A Hugging Face cache holding REPO at one commit, laid out as huggingface_hub writes it."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "b1").write_bytes(b"w" * size)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("c" * 40)
    snap = folder / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/b1")
    return root


def test_model_info_of_a_service_names_presets_services_cache_and_hub(gpumod: Gpumod, tmp_path: Path) -> None:
    repo = HubRepo.generate(REPO, {"model-00001.safetensors": 3 << 20, "model-00002.safetensors": 1 << 20},
                            texts={"config.json": json.dumps({"text_config": QWEN3_8B}), "README.md": "hi"})
    cache = _cache_with(tmp_path / "hub-cache", REPO, 4096)
    with HubServer([repo]) as hub:
        g = Gpumod(gpumod.home, gpumod.specs, {"HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(cache)})
        res = g.run("model", "info", "chat", "--specs", str(g.specs), "-o", "json")
        assert res.returncode == 0, res.stdout + res.stderr
        info = json.loads(res.stdout)
        text = g.run("model", "info", "chat", "--specs", str(g.specs))
    assert info["model"] == REPO
    assert [p["name"] for p in info["presets"]] == ["qwen3-vl-2b-instruct"]
    assert "gpu_memory_utilization 0.35" in info["presets"][0]["sizing"]
    services = {s["name"]: s for s in info["services"]}
    assert set(services) == {"chat", "hyde"}
    # the planner's figure: 0.35 x the sim RTX 4090's 24564 MiB total
    assert services["chat"]["awake_mb"] == 8598 and "RTX 4090" in services["chat"]["gpu"]
    assert "rag" in services["chat"]["modes"]
    assert info["pods"] == [{"pod": "sim-box", "cached_bytes": 4096, "complete": True, "error": ""}]
    hub_facts = info["hub"]
    assert hub_facts["error"] == "" and hub_facts["files"] == 4
    assert hub_facts["weights_bytes"] == 4 << 20 and hub_facts["weights_mb"] == 4
    assert hub_facts["kv_mb_per_1k"] == 140.7 and hub_facts["config"]["num_key_value_heads"] == 8
    assert text.returncode == 0 and "weights_mb: 4, kv_mb_per_1k: 140.7" in text.stdout
    assert "pod sim-box: cached" in text.stdout


def test_an_unreachable_hub_still_answers_with_what_is_known_here(gpumod: Gpumod) -> None:
    g = Gpumod(gpumod.home, gpumod.specs, {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    res = g.run("model", "info", "qwen3-vl-2b-instruct", "--specs", str(g.specs), "-o", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    info = json.loads(res.stdout)
    assert info["model"] == REPO and {s["name"] for s in info["services"]} == {"chat", "hyde"}
    assert info["hub"]["files"] == 0 and "cannot list" in info["hub"]["error"]
    offline = json.loads(g.run("model", "info", REPO, "--specs", str(g.specs), "--no-hub", "-o", "json").stdout)
    assert offline["hub"] is None and offline["pods"][0]["cached_bytes"] == 0


def test_a_name_nothing_knows_is_refused_with_suggestions(gpumod: Gpumod) -> None:
    res = gpumod.run("model", "info", "qwen3-vl-2b-instruc", "--specs", str(gpumod.specs), "--no-hub")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no preset, service or Hugging Face repo id named qwen3-vl-2b-instruc" in res.stderr
    assert "did you mean qwen3-vl-2b-instruct" in res.stderr
    missing = gpumod.run("model", "info", REPO, "--specs", os.devnull + "-nothing")
    assert missing.returncode == 2 and "no spec directory" in missing.stderr
