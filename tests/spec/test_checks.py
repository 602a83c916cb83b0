"""Cross-document checks: each one reported at the line of the key it is about."""

from __future__ import annotations

import pytest

from gpumod.spec import HostSpec, parse_host

from ._helpers import SIM_POD, loaded, problems_of



def svc(name: str, port: int, extra: str = "") -> str:
    return f"kind: Service\nname: {name}\ndriver: command\ncommand: [x]\nport: {port}\nvram_mb: 100\n{extra}"


def test_duplicate_names_name_both_places(repo) -> None:
    root = repo(**{"a.yaml": svc("s", 1), "b.yaml": "kind: Mode\nname: m\n---\n" + svc("s", 2)})
    assert problems_of(root) == [
        "specs/a.yaml:1: duplicate Service 's' (also at specs/b.yaml:4); rename or remove one",
        "specs/b.yaml:4: duplicate Service 's' (also at specs/a.yaml:1); rename or remove one",
    ]


def test_same_name_in_different_kinds_is_fine(repo) -> None:
    root = repo(**{"a.yaml": svc("m", 1) + "---\nkind: Mode\nname: m\nservices: [m]\n"})
    assert problems_of(root) == []


def test_pod_mode_not_defined(repo) -> None:
    root = repo(**{"p.yaml": "kind: Pod\nname: p\nmode: nothing\n---\nkind: Mode\nname: code\n"})
    assert problems_of(root) == [
        "specs/p.yaml:3: mode 'nothing' is not defined; define a Mode named 'nothing' or use one of: code"
    ]


def test_mode_member_not_defined_suggests_a_close_name(repo) -> None:
    root = repo(
        **{"a.yaml": svc("embedding", 1) + "---\nkind: Mode\nname: m\nservices:\n  - embedding\n  - embeding\n"}
    )
    assert problems_of(root) == ["specs/a.yaml:12: service 'embeding' is not defined; did you mean 'embedding'?"]


def test_member_listed_twice(repo) -> None:
    root = repo(**{"a.yaml": svc("s", 1) + "---\nkind: Mode\nname: m\nservices: [s, {name: s, state: active}]\n"})
    assert problems_of(root) == ["specs/a.yaml:10: service s is listed twice in mode m; keep one"]


def test_unknown_preset_lists_close_matches(repo) -> None:
    root = repo(**{"a.yaml": "kind: Service\nname: s\npreset: qwen3-embeding\n"})
    assert problems_of(root) == [
        "specs/a.yaml:3: unknown preset 'qwen3-embeding'; did you mean 'qwen3-embedding-0.6b'?"
    ]
    root = repo(**{"a.yaml": "kind: Service\nname: s\npreset: zzzz\n"})
    assert problems_of(root) == ["specs/a.yaml:3: unknown preset 'zzzz'; see presets/ for the known ones"]


def test_depends_on_unknown_service(repo) -> None:
    root = repo(**{"a.yaml": svc("s", 1, "depends_on:\n  - s2\n  - nope\n") + "---\n" + svc("s2", 2)})
    assert problems_of(root) == [
        "specs/a.yaml:9: service s depends on 'nope', which is not defined; define a Service named 'nope' or use "
        "one of: s, s2"
    ]


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        ({"a": "a"}, ["specs/a.yaml:7: depends_on cycle: a -> a; remove one of these dependencies"]),
        (
            {"c": "a", "a": "b", "b": "c"},
            ["specs/a.yaml:7: depends_on cycle: a -> b -> c -> a; remove one of these dependencies"],
        ),
    ],
)
def test_depends_on_cycles_are_named_once(repo, deps: dict[str, str], expected: list[str]) -> None:
    names = sorted(deps)
    text = "---\n".join(svc(n, i + 1, f"depends_on: [{deps[n]}]\n") for i, n in enumerate(names))
    assert problems_of(repo(**{"a.yaml": text})) == expected


def test_two_cycles_are_both_reported(repo) -> None:
    text = "---\n".join(
        [svc("a", 1, "depends_on: [b]\n"), svc("b", 2, "depends_on: [a, c]\n"), svc("c", 3, "depends_on: [b]\n")]
    )
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:7: depends_on cycle: a -> b -> a; remove one of these dependencies",
        "specs/a.yaml:15: depends_on cycle: b -> c -> b; remove one of these dependencies",
    ]


def test_a_long_dependency_chain_is_fine(repo) -> None:
    n = 1500  # deeper than Python's recursion limit: the check must not recurse
    text = "---\n".join(svc(f"s{i}", 1000 + i, f"depends_on: [s{i + 1}]\n" if i + 1 < n else "") for i in range(n))
    assert problems_of(repo(**{"a.yaml": text})) == []


def test_two_members_of_a_mode_on_one_port(repo) -> None:
    root = repo(
        **{"a.yaml": svc("a", 7000) + "---\n" + svc("b", 7000) + "---\nkind: Mode\nname: m\nservices: [a, b]\n"}
    )
    assert problems_of(root) == [
        "specs/a.yaml:17: services a and b of mode m both use port 7000; give one of them another port"
    ]


def test_ports_are_compared_after_preset_merge(repo) -> None:
    text = "kind: Service\nname: e\npreset: qwen3-embedding-0.6b\n---\n" + svc("x", 7072)
    text += "---\nkind: Mode\nname: m\nservices: [e, x]\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:14: services e and x of mode m both use port 7072; give one of them another port"
    ]


def test_the_same_port_in_two_modes_is_fine(repo) -> None:
    text = svc("a", 7000) + "---\n" + svc("b", 7000)
    text += "---\nkind: Mode\nname: m1\nservices: [a]\n---\nkind: Mode\nname: m2\nservices: [b]\n"
    assert problems_of(repo(**{"a.yaml": text})) == []


def test_dependency_outside_the_mode(repo) -> None:
    text = svc("a", 1, "depends_on: [b]\n") + "---\n" + svc("b", 2) + "---\nkind: Mode\nname: m\nservices: [a]\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:18: service a depends on b, which is not in mode m; add b to the mode or drop it from depends_on"
    ]


def test_pinned_gpus_beyond_the_pod(repo) -> None:
    text = SIM_POD + "---\n" + svc("a", 1, "gpus: [0, 1]\n") + "---\nkind: Mode\nname: m\nservices: [a]\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:13: service a pins GPU 1, but pod box has 1 GPU (index 0); pin GPUs the pod has"
    ]


def test_gpu_count_larger_than_the_pod(repo) -> None:
    pod = SIM_POD.replace("gpus: [", "gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}, ")
    text = pod + "---\n" + svc("a", 1, "gpus: 4\n") + "---\nkind: Mode\nname: m\nservices: [a]\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:13: service a needs 4 GPUs, but pod box has 2 GPUs (indices 0-1); lower gpus or use a bigger pod"
    ]


def test_pinned_gpus_on_a_pod_without_declared_gpus_wait_for_observation(repo) -> None:
    text = "kind: Pod\nname: p\nhost: local\nmode: m\n---\n" + svc("a", 1, "gpus: [5]\n")
    text += "---\nkind: Mode\nname: m\nservices: [a]\n"
    assert problems_of(repo(**{"a.yaml": text})) == []


def test_a_gpu_pinned_twice(repo) -> None:
    assert problems_of(repo(**{"a.yaml": svc("a", 1, "gpus: [0, 0]\n")})) == [
        "specs/a.yaml:7: service a pins a GPU twice ([0, 0]); list each index once"
    ]
    assert problems_of(repo(**{"a.yaml": svc("a", 1, "gpus: [-1]\n")})) == [
        "specs/a.yaml:7: service a pins a negative GPU index; indices start at 0"
    ]


@pytest.mark.parametrize("state", ["sleeping", "standby"])
def test_a_member_that_cannot_sleep(repo, state: str) -> None:
    text = svc("a", 1) + f"---\nkind: Mode\nname: m\nservices:\n  - {{name: a, state: {state}}}\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:11: service a cannot sleep; set sleep: l1|l2|router on it or make it active in mode m"
    ]


def test_a_preset_can_supply_the_sleep_level(repo) -> None:
    text = "kind: Service\nname: r\npreset: qwen3-reranker-0.6b\n"
    text += "---\nkind: Mode\nname: m\nservices: [{name: r, state: standby}]\n"
    assert problems_of(repo(**{"a.yaml": text})) == []


def test_sleep_level_must_suit_the_driver(repo) -> None:
    text = svc("a", 1, "sleep: l1\n") + "---\n"
    text += "kind: Service\nname: b\ndriver: llamacpp\nmodel_path: m.gguf\nport: 2\nvram_mb: 1\nsleep: l2\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:7: driver command cannot sleep at level l1; use sleep: none",
        "specs/a.yaml:15: driver llamacpp cannot sleep at level l2; use sleep: none or router",
    ]


def test_sim_pod_needs_gpus_and_sim_settings_need_a_sim_pod(repo) -> None:
    text = "kind: Pod\nname: a\nhost: sim\nmode: m\n---\nkind: Pod\nname: b\nhost: local\nmode: m\nsim: {load_s: 1}\n"
    text += "---\nkind: Mode\nname: m\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:3: pod a is simulated (host: sim) but declares no gpus; "
        "add gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]",
        "specs/a.yaml:10: sim settings apply to host: sim (or an SSH pod with simulated GPUs); remove sim: from pod b",
    ]


def test_ssh_pod_may_simulate_its_gpus_when_it_declares_them(repo) -> None:
    text = "kind: Pod\nname: a\nhost: ssh://root@127.0.0.1:22\nmode: m\nsim: {load_s: 1}\n"
    text += "---\nkind: Pod\nname: b\nhost: ssh://root@127.0.0.1:22\nmode: m\nsim: {load_s: 1}\n"
    text += "gpus: [{name: RTX 4090, memory_mb: 24564}]\n---\nkind: Mode\nname: m\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:5: pod a simulates its GPUs over SSH (sim:) but declares no gpus; add gpus: [...]",
    ]


def test_bad_host_strings(repo) -> None:
    text = "---\n".join(
        f"kind: Pod\nname: p{i}\nhost: '{host}'\nmode: m\n"
        for i, host in enumerate(["ssh://1.2.3.4", "ssh root@h -p x", "ssh -o X=1 root@h", "remote"])
    )
    assert problems_of(repo(**{"a.yaml": text + "---\nkind: Mode\nname: m\n"})) == [
        "specs/a.yaml:3: host 'ssh://1.2.3.4' is not ssh://user@host[:port]; use local, sim, ssh://user@host[:port] "
        "or 'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'",
        "specs/a.yaml:8: host 'ssh root@h -p x': port 'x' is not a number from 1 to 65535; use local, sim, "
        "ssh://user@host[:port] or 'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'",
        "specs/a.yaml:13: host 'ssh -o X=1 root@h': option -o is not supported; use -p, -i or -J (or ~/.ssh/config); "
        "use local, sim, ssh://user@host[:port] or 'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'",
        "specs/a.yaml:18: host 'remote' is not one of: local, sim, ssh://user@host[:port] or "
        "'ssh [-p PORT] [-i KEY] [-J JUMP] user@host'",
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("local", HostSpec("local")),
        ("sim", HostSpec("sim")),
        ("ssh://root@1.2.3.4", HostSpec("ssh", user="root", host="1.2.3.4", port=22)),
        ("ssh://ubuntu@gpu.example.org:2222", HostSpec("ssh", user="ubuntu", host="gpu.example.org", port=2222)),
        ("ssh://root@[::1]:22", HostSpec("ssh", user="root", host="::1", port=22)),
        ("ssh root@1.2.3.4 -p 22", HostSpec("ssh", user="root", host="1.2.3.4", port=22)),
        ("ssh -p 40022 root@ssh5.vast.ai", HostSpec("ssh", user="root", host="ssh5.vast.ai", port=40022)),
        (
            "ssh -i ~/.ssh/id_pod -J jump@bastion root@10.0.0.2 -p 2200",
            HostSpec("ssh", user="root", host="10.0.0.2", port=2200, key="~/.ssh/id_pod", jump="jump@bastion"),
        ),
    ],
)
def test_parse_host_accepts(host: str, expected: HostSpec) -> None:
    assert parse_host(host) == expected


@pytest.mark.parametrize(
    "host",
    ["", "ssh", "ssh root@", "ssh://root@h:0", "ssh://root@h:99999", "ssh -p 1 -p 2 root@h", "ssh a@b c@d", "ssh -i", "ftp://x"],
)
def test_parse_host_rejects(host: str) -> None:
    with pytest.raises(ValueError, match="host"):
        parse_host(host)


def test_no_driver_or_port_after_preset_merge(repo) -> None:
    text = "kind: Service\nname: a\nmodel: x\nvram_mb: 1\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:1: service a has no driver; set driver: vllm, llamacpp, fastapi or command",
        "specs/a.yaml:1: service a has no port; set port: <1-65535>",
    ]


def test_models_and_commands_are_required_per_driver(repo) -> None:
    docs = [
        "kind: Service\nname: v\ndriver: vllm\nport: 1\nvram_mb: 1\n",
        "kind: Service\nname: l\ndriver: llamacpp\nmodel: some/model\nport: 2\nvram_mb: 1\n",
        "kind: Service\nname: f\ndriver: fastapi\nport: 3\nvram_mb: 1\n",
        "kind: Service\nname: d\ndriver: docker\nport: 4\nvram_mb: 1\n",
        "kind: Service\nname: ok-router\ndriver: llamacpp\nmodels_dir: ~/models\nsleep: router\nport: 5\nvram_mb: 1\n",
        "kind: Service\nname: ok-file\ndriver: llamacpp\nmodel_path: ~/m.gguf\nport: 6\nvram_mb: 1\n",
    ]
    assert problems_of(repo(**{"a.yaml": "---\n".join(docs)})) == [
        "specs/a.yaml:1: service v (driver vllm) has no model; set model: <Hugging Face id>",
        "specs/a.yaml:7: service l (driver llamacpp) has no model; set model_path: <file.gguf> or models_dir: "
        "<dir> (router)",
        "specs/a.yaml:14: service f (driver fastapi) has no command; set command: [argv, ...]",
        "specs/a.yaml:20: service d (driver docker) has no image; set image: <repository:tag>",
    ]


def test_a_footprint_source_is_required(repo) -> None:
    docs = [
        "kind: Service\nname: a\ndriver: command\ncommand: [x]\nport: 1\n",
        "kind: Service\nname: b\ndriver: command\ncommand: [x]\nport: 2\nweights_mb: 100\nkv_mb_per_1k: 10\n",
    ]
    assert problems_of(repo(**{"a.yaml": "---\n".join(docs)})) == [
        "specs/a.yaml:1: cannot tell the VRAM footprint of a; set vram_mb (or gpu_memory_utilization for vLLM)",
        "specs/a.yaml:7: cannot estimate the KV cache of b without a context; set context or vram_mb",
    ]


def test_a_preset_needs_a_config_for_the_sim_pods_gpu(repo) -> None:
    text = SIM_POD + "---\nkind: Service\nname: big\npreset: gpt-oss-120b\n---\nkind: Mode\nname: m\nservices: [big]\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:9: preset gpt-oss-120b has no config for 1 x NVIDIA GeForce RTX 4090; it has: 1 x H100/H200, "
        "2 x H100/H200, 4 x H100/H200, 8 x H100/H200, 1 x B200, 2 x B200. Use GPUs it supports, set gpus to one "
        "of those counts, or pick another preset"
    ]


def test_a_preset_without_a_config_for_the_gpu_count(repo) -> None:
    text = "kind: Service\nname: big\npreset: qwen3-coder-480b-a35b\ngpus: 2\n"
    assert problems_of(repo(**{"a.yaml": text})) == [
        "specs/a.yaml:3: preset qwen3-coder-480b-a35b has no config for 2 GPU(s); it has: 8 x H200/H20. "
        "Use GPUs it supports, set gpus to one of those counts, or pick another preset"
    ]


def test_valid_specs_with_presets_pass_every_check(repo) -> None:
    text = SIM_POD + "---\nkind: Service\nname: code\npreset: devstral-small-2\n"
    text += "---\nkind: Mode\nname: m\nservices: [code]\n"
    specs = loaded(repo(**{"a.yaml": text}))
    assert specs.service("code").preset == "devstral-small-2"  # type: ignore[union-attr]
