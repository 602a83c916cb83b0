"""The compiled agent cached on the pod (boot.py) and the sim check folded into the first call.

Real processes through LocalTransport; a recording wrapper counts the round trips and bytes."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from gpumod.drivers.agent import BOOT, BOOT_SEND, PodAgent, agent_key, agent_script, split_request
from gpumod.drivers.transports.local import LocalTransport
from gpumod.errors import PodError
from gpumod.ports import CommandResult
from gpumod.sim.pod import ensure_sim_pod


class Recording(LocalTransport):
    """LocalTransport that keeps what each call sent."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sent: list[tuple[tuple[str, ...], bytes]] = []

    async def run(self, argv, *, stdin=None, timeout=None) -> CommandResult:
        self.sent.append((tuple(argv), stdin or b""))
        return await super().run(argv, stdin=stdin, timeout=timeout)


def agent_on(state_dir: Path, transport: Recording, **kw) -> PodAgent:
    return PodAgent(transport, pod="box", state_dir=str(state_dir), python=sys.executable, **kw)


def cache_file(state_dir: Path) -> Path:
    (found,) = [p for p in (state_dir / "agent").iterdir() if p.name.startswith(agent_key().decode())]
    return found


async def test_first_call_misses_then_calls_send_only_the_payload(tmp_path):
    state = tmp_path / "state"
    t = Recording()
    agent = agent_on(state, t)
    await agent.logs("web")  # first contact: key only, miss, sent again with the script
    assert [len(split_request(stdin)[0]) for _, stdin in t.sent] == [0, len(agent_script())]
    assert [argv[-1] for argv, _ in t.sent] == [BOOT, BOOT_SEND]
    await agent.logs("web")
    await agent_on(state, t).logs("web")  # another run (new PodAgent) finds the cache too
    assert [len(split_request(stdin)[0]) for _, stdin in t.sent[2:]] == [0, 0]
    assert all(len(stdin) < 1000 for _, stdin in t.sent[2:])
    assert stat.S_IMODE((state / "agent").stat().st_mode) == 0o700
    assert stat.S_IMODE(cache_file(state).stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", ["tamper", "truncate"])
async def test_a_damaged_cache_is_a_miss_and_is_replaced(tmp_path, damage):
    state = tmp_path / "state"
    t = Recording()
    await agent_on(state, t).logs("web")
    path = cache_file(state)
    blob = path.read_bytes()
    digest, _, code = blob.partition(b"\n")
    if damage == "tamper":  # a changed program: its digest no longer matches
        code = code.replace(b"gpumod-podside", b"gpumod-evilside")
        path.write_bytes(digest + b"\n" + code)
    else:
        path.write_bytes(blob[: len(blob) // 2])
    t.sent.clear()
    assert await agent_on(state, t).logs("web") == ""
    assert [len(split_request(stdin)[0]) > 0 for _, stdin in t.sent] == [False, True]
    assert path.read_bytes() == blob  # rewritten whole


async def test_a_cache_dir_open_to_others_is_not_trusted_and_the_script_is_always_sent(tmp_path):
    state = tmp_path / "state"
    t = Recording()
    agent = agent_on(state, t)
    await agent.logs("web")
    await agent.logs("web")  # a hit
    (state / "agent").chmod(0o777)
    t.sent.clear()
    for _ in range(3):
        await agent.logs("web")
    # miss + resend, miss again + resend: from then on the script goes with every call
    assert [len(split_request(stdin)[0]) > 0 for _, stdin in t.sent] == [False, True, False, True, True]


async def test_a_script_that_does_not_match_its_key_is_refused(tmp_path):
    payload = {"op": "logs", "pod": "box", "state_dir": str(tmp_path), "env": {}, "args": {"name": "web"}}
    script = agent_script() + b"\nprint('extra')\n"
    stdin = b"%s %d\n" % (agent_key(), len(script)) + script + json.dumps(payload).encode()
    result = await LocalTransport().run([sys.executable, "-S", "-c", BOOT_SEND], stdin=stdin, timeout=30)
    assert result.returncode == 2 and b"does not match" in result.stdout
    assert not (tmp_path / "agent").exists()


def sim_pod(tmp_path: Path) -> tuple[Path, list[list]]:
    gpus = [["NVIDIA GeForce RTX 4090", 24564]]
    return tmp_path / "sim" / "box", gpus


async def test_the_sim_check_rides_on_the_first_call(tmp_path):
    directory, gpus = sim_pod(tmp_path)
    ensure_sim_pod(directory, [tuple(g) for g in gpus], sys.executable)
    t = Recording()
    seen = []
    await agent_on(tmp_path / "state", t).logs("web")  # prime the agent cache
    agent = agent_on(tmp_path / "state", t, sim={"dir": str(directory), "gpus": gpus}, on_sim=seen.append)
    t.sent.clear()
    raw = await agent.observe()
    assert len(t.sent) == 1 and agent.sim is None
    assert seen and seen[0]["dir"] == str(directory) and seen[0]["bin"] == str(directory / "bin")
    assert raw["smi"]["ok"], raw["smi"]  # the stand-in nvidia-smi was on PATH in that call
    assert "<total>24564 MiB</total>" in raw["smi"]["stdout"]
    await agent.observe()
    assert "sim" not in split_request(t.sent[-1][1])[1]  # checked once per run


async def test_a_sim_pod_not_set_up_is_set_up_once_then_the_call_is_sent_again(tmp_path):
    directory, gpus = sim_pod(tmp_path)
    t = Recording()
    setups = []

    async def setup() -> None:
        setups.append(1)
        ensure_sim_pod(directory, [tuple(g) for g in gpus], sys.executable)

    agent = agent_on(tmp_path / "state", t, sim={"dir": str(directory), "gpus": gpus}, setup_sim=setup)
    raw = await agent.observe()
    assert setups == [1] and raw["smi"]["ok"]

    other = agent_on(tmp_path / "state2", Recording(), sim={"dir": str(tmp_path / "none"), "gpus": gpus})
    with pytest.raises(PodError, match="simulated GPUs are not set up"):
        await other.observe()


def test_the_boot_programs_are_python_3_8_and_the_common_one_is_small():
    import ast

    for program in (BOOT, BOOT_SEND):
        ast.parse(program, feature_version=(3, 8))
    assert len(BOOT) < 1024  # sent in argv with every call
