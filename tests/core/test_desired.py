"""build_desired(): the pod's mode members, resolved for the pod's GPUs, with targets and footprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumod.core.desired import build_desired
from gpumod.core.model import GpuInfo
from gpumod.errors import GpumodError, SpecError
from gpumod.spec import PresetCatalog, SpecSet, load_specs

VALID = Path(__file__).parents[1] / "spec" / "fixtures" / "valid"
CATALOG = PresetCatalog.load()
H100 = GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", total_mb=81559)


@pytest.fixture(scope="module")
def specs() -> SpecSet:
    return load_specs(VALID)


def test_sim_pod_from_declared_gpus(specs: SpecSet) -> None:
    (box,) = build_desired(specs, CATALOG, {}, pods=["box"])
    assert (box.name, box.mode, box.reserve_mb, box.max_awake) == ("box", "code", 512, 1)
    assert box.gpus == (GpuInfo(index=0, name="NVIDIA GeForce RTX 4090", total_mb=24564),)
    assert [(s.name, s.target, s.footprint.awake_mb, s.footprint.asleep_mb) for s in box.services] == [
        ("embedding-code", "active", 2500, 2500),
        ("glm-code", "active", 19100, 300),
    ]
    glm = box.service("glm-code")
    assert glm is not None and glm.spec.depends_on == ("embedding-code",) and glm.spec.startup_timeout_s == 90
    assert glm.spec.source.endswith("valid/services/code.yaml:5")


def test_observed_gpus_win_and_pick_the_preset_config(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "kind: Pod\nname: p\nhost: local\nmode: m\n---\n"
        "kind: Service\nname: big\npreset: gpt-oss-120b\n---\n"
        "kind: Mode\nname: m\nservices: [big]\n"
    )
    specs = load_specs(tmp_path)
    (pod,) = build_desired(specs, CATALOG, {"p": (H100,)})
    big = pod.services[0]
    assert pod.gpus == (H100,)
    assert big.spec.gpu_memory_utilization == 0.95  # the 1 x H100 config
    assert big.footprint.awake_mb == 77482  # ceil(0.95 * 81559)
    assert ("max-num-batched-tokens", 1024) in big.spec.args
    with pytest.raises(SpecError) as info:  # not observed, not declared
        build_desired(specs, CATALOG, {})
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path}/s.yaml:1: pod p has no GPUs known: none observed and none declared; add gpus: [...]"
    ]


def test_mode_override_and_added_services(specs: SpecSet) -> None:
    (box,) = build_desired(
        specs, CATALOG, {}, pods=["box"], mode_override={"box": "rag"}, add={"box": ["chat", "glm-code"]}
    )
    assert box.mode == "rag" and box.max_awake == 1
    assert [(s.name, s.target) for s in box.services] == [
        ("embedding-code", "active"),
        ("reranker", "standby"),
        ("chat", "active"),  # was standby: --add makes it active
        ("asr", "active"),
        ("glm-code", "active"),
    ]
    chat = box.service("chat")
    assert chat is not None and chat.footprint.awake_mb == 8598 and chat.footprint.asleep_mb == 600
    assert dict(chat.spec.args)["max-num-seqs"] == 8 and "enforce-eager" not in dict(chat.spec.args)
    asr = box.service("asr")
    assert asr is not None and asr.spec.command == ("python3", "-m", "gpumod.sim.server", "--port", "{port}")


def test_all_pods_sorted_and_errors_of_every_pod_collected(specs: SpecSet) -> None:
    with pytest.raises(SpecError) as info:
        build_desired(specs, CATALOG, {})  # `rented` declares no GPUs and none were observed
    assert [p.message for p in info.value.problems] == [
        "pod rented has no GPUs known: none observed and none declared; add gpus: [...]"
    ]
    pods = build_desired(specs, CATALOG, {"rented": (H100,)})
    assert [p.name for p in pods] == ["box", "rented"]
    assert pods == build_desired(specs, CATALOG, {"rented": (H100,), "box": ()})


def test_footprints_use_the_largest_gpu_or_the_pinned_one(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "kind: Pod\nname: p\nhost: sim\nmode: m\n"
        "gpus: [{name: small, memory_mb: 10000}, {name: big, memory_mb: 20000}]\n---\n"
        "kind: Service\nname: a\ndriver: vllm\nmodel: x\nport: 1\ngpu_memory_utilization: 0.5\n---\n"
        "kind: Service\nname: b\ndriver: vllm\nmodel: x\nport: 2\ngpu_memory_utilization: 0.5\ngpus: [0]\n---\n"
        "kind: Mode\nname: m\nservices: [a, b]\n"
    )
    (pod,) = build_desired(load_specs(tmp_path), CATALOG, {})
    assert [(s.name, s.footprint.awake_mb, s.spec.pinned_gpus) for s in pod.services] == [
        ("a", 10000, None),
        ("b", 5000, (0,)),
    ]
    observed = (GpuInfo(index=0, name="small", total_mb=10000),)  # GPU 1 gone: b still fits, a sizes on GPU 0
    (pod,) = build_desired(load_specs(tmp_path), CATALOG, {"p": observed})
    assert [s.footprint.awake_mb for s in pod.services] == [5000, 5000]


def test_a_pin_on_a_gpu_the_pod_lacks(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "kind: Pod\nname: p\nhost: local\nmode: m\n---\n"
        "kind: Service\nname: a\ndriver: command\ncommand: [x]\nport: 1\nvram_mb: 10\ngpus: [3]\n---\n"
        "kind: Mode\nname: m\nservices: [a]\n"
    )
    with pytest.raises(SpecError) as info:
        build_desired(load_specs(tmp_path), CATALOG, {"p": (H100,)})
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path}/s.yaml:6: pins GPU 3, but the pod has GPUs 0; pin GPUs it has"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pods": ["nope"]}, "no pod named 'nope' in the specs"),
        ({"mode_override": {"box": "nope"}}, "no mode named 'nope' in the specs (asked for pod box)"),
        ({"add": {"box": ["nope"]}}, "no service named 'nope' in the specs (asked for pod box)"),
    ],
)
def test_unknown_names_from_the_command_line(specs: SpecSet, kwargs: dict, message: str) -> None:
    with pytest.raises(GpumodError) as info:
        build_desired(specs, CATALOG, {}, **kwargs)
    assert str(info.value) == message and info.value.hint


def test_the_result_does_not_depend_on_input_order(specs: SpecSet) -> None:
    gpus = {"rented": (H100,), "box": ()}
    first = build_desired(specs, CATALOG, gpus)
    flipped = SpecSet(
        root=specs.root,
        pods=tuple(reversed(specs.pods)),
        services=tuple(reversed(specs.services)),
        modes=tuple(reversed(specs.modes)),
        documents=specs.documents,
    )
    assert build_desired(flipped, CATALOG, dict(reversed(list(gpus.items())))) == first


def test_an_added_service_brings_its_dependencies(specs: SpecSet) -> None:
    # blank has no members; chat depends on embedding-code, which comes along, awake
    (box,) = build_desired(specs, CATALOG, {}, pods=["box"], mode_override={"box": "blank"}, add={"box": ["chat"]})
    assert [(s.name, s.target) for s in box.services] == [("chat", "active"), ("embedding-code", "active")]


def test_an_explicit_set_of_services_replaces_the_mode(specs: SpecSet) -> None:
    (box,) = build_desired(specs, CATALOG, {}, pods=["box"], services={"box": ["glm-code", "asr"]})
    assert box.mode == "custom"
    assert [(s.name, s.target) for s in box.services] == [
        ("glm-code", "active"), ("asr", "active"), ("embedding-code", "active")
    ]
    with pytest.raises(GpumodError, match="no service named 'nope'"):
        build_desired(specs, CATALOG, {}, pods=["box"], services={"box": ["nope"]})
