"""preset_fit (``gpumod presets --pod P``): a config for the pod's GPU type and a count it has "fits",
one for the same count on another type "possibly works", none it can run is "no config"."""

from __future__ import annotations

import textwrap

from gpumod.spec import PresetCatalog
from gpumod.spec.presets import PresetFit, preset_fit

RTX = "NVIDIA GeForce RTX 4090"
H100 = "NVIDIA H100 80GB HBM3"
H200 = "NVIDIA H200"
A100 = "NVIDIA A100-SXM4-80GB"

SHIPPED = PresetCatalog.load()


def catalog(**presets: str) -> PresetCatalog:
    files = [(f"presets/{n}.yaml", f"name: {n}\nrole: chat\n" + textwrap.dedent(b)) for n, b in presets.items()]
    return PresetCatalog.from_texts(files)


def verdicts(cat: PresetCatalog, gpus: list[str]) -> dict[str, str]:
    return {fit.name: fit.verdict for fit in preset_fit(cat, gpus)}


TWO_H100_ONLY = """
configs:
  - gpu_count: 2
    gpu_types: [H100]
"""


def test_a_config_for_this_type_and_a_count_the_pod_has_fits() -> None:
    cat = catalog(tp2=TWO_H100_ONLY)
    assert verdicts(cat, [H100, H100]) == {"tp2": "fits"}
    assert verdicts(cat, [H100, H100, H100, H100]) == {"tp2": "fits"}, "a 4-GPU pod can run a 2-GPU config"


def test_the_same_count_on_another_type_possibly_works() -> None:
    cat = catalog(tp2=TWO_H100_ONLY)
    assert verdicts(cat, [A100, A100]) == {"tp2": "possibly works"}
    assert verdicts(cat, [H100, A100]) == {"tp2": "possibly works"}, "only one H100: the type matches one GPU of two"


def test_more_gpus_than_the_pod_has_is_no_config() -> None:
    cat = catalog(tp2=TWO_H100_ONLY)
    assert verdicts(cat, [H100]) == {"tp2": "no config"}
    assert verdicts(cat, []) == {"tp2": "no config"}


def test_a_preset_without_configs_runs_on_any_gpu() -> None:
    cat = catalog(small="driver: vllm\nmodel: org/small\nport: 8000\n")
    assert verdicts(cat, [RTX]) == {"small": "fits"}


def test_gpu_types_match_case_insensitively_as_substrings() -> None:
    cat = catalog(one="configs:\n  - gpu_count: 1\n    gpu_types: [h100, B200]\n")
    assert verdicts(cat, [H100]) == {"one": "fits"}
    assert verdicts(cat, ["NVIDIA B200"]) == {"one": "fits"}


def test_the_shipped_presets_on_a_4090_and_on_two_h100s() -> None:
    on_4090 = verdicts(SHIPPED, [RTX])
    assert on_4090["bge-m3"] == "fits" and on_4090["devstral-small-2"] == "fits"
    assert on_4090["gpt-oss-20b"] == "possibly works"  # 1 x H100/H200/B200 configs only
    assert on_4090["glm-4.5"] == "no config"  # 16 x H100 or 8 x H200
    on_h100s = verdicts(SHIPPED, [H100, H100])
    assert on_h100s["qwen2.5-coder-32b"] == "fits" and on_h100s["glm-4.5-air-fp8"] == "fits"
    assert on_h100s["glm-4.5-fp8"] == "no config" and on_h100s["kimi-k2"] == "no config"
    on_h200 = verdicts(SHIPPED, [H200])
    assert on_h200["glm-4.5-air-fp8"] == "fits" and on_h200["glm-4.5-air"] == "fits"


def test_every_preset_is_listed_once_in_catalog_order_with_its_role() -> None:
    fits = preset_fit(SHIPPED, [RTX])
    assert [f.name for f in fits] == list(SHIPPED.names())
    assert all(isinstance(f, PresetFit) and f.role for f in fits)
    name, role, verdict = fits[0]
    assert (name, role) == (SHIPPED.presets[0].name, SHIPPED.presets[0].role)
    assert verdict in ("fits", "possibly works", "no config")
