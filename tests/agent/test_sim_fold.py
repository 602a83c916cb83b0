"""An SSH pod that simulates its GPUs costs one round trip per observation (issue 7, P1).

The pod's handle comes from ``wiring.open_pod`` as for any SSH pod; its transport is then swapped
for a recording LocalTransport ("the pod" is this machine), so the real agent, the real sim
set-up (``python -m gpumod.sim.pod``) and the real nvidia-smi stand-in run."""

from __future__ import annotations

import sys
from pathlib import Path

from test_agent_cache import Recording

from gpumod.observe import observe_pod
from gpumod.spec.models import PodSpec
from gpumod.wiring import open_pod


def ssh_sim_pod(state_dir: Path, name: str = "box") -> PodSpec:
    return PodSpec.model_validate({
        "kind": "Pod", "name": name, "host": "ssh://root@192.0.2.1:22", "mode": "m", "python": sys.executable,
        "state_dir": str(state_dir), "gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_mb": 24564}],
        "sim": {"load_s": 0.1, "sleep_s": 0.1, "wake_s": 0.1},
    })


def handle_on(spec: PodSpec, transport: Recording):
    handle = open_pod(spec)
    handle.transport = handle.agent.transport = transport
    return handle


async def test_first_contact_sets_up_the_sim_then_each_observation_is_one_round_trip(tmp_path):
    spec = ssh_sim_pod(tmp_path / "state")
    first = Recording()
    handle = handle_on(spec, first)
    observed = await observe_pod(handle.agent)
    assert observed.reachable and [g.total_mb for g in observed.gpus] == [24564], observed.error
    assert any("gpumod.sim.pod" in argv for argv, _ in first.sent)  # the full set-up, once
    sim_dir = str(tmp_path / "state" / "sim" / "box")
    assert handle.unit_env["GPUMOD_SIM_DIR"] == sim_dir and handle.unit_env["PATH"].startswith(sim_dir + "/bin")
    assert handle.unit_env["GPUMOD_SIM_LOAD_S"] == "0.1" and handle.ctx.python == sys.executable

    again = Recording()  # the next run: agent cached, sim set up
    handle = handle_on(spec, again)
    observed = await observe_pod(handle.agent)
    assert observed.reachable and len(observed.gpus) == 1
    assert len(again.sent) == 1  # the sim check rode on the observation
    assert handle.unit_env["GPUMOD_SIM_DIR"] == sim_dir
    await observe_pod(handle.agent)
    assert len(again.sent) == 2


async def test_a_failing_sim_set_up_makes_the_pod_unreachable_not_a_crash(tmp_path):
    (tmp_path / "file").write_text("")  # the state dir cannot be made: the set-up fails
    handle = handle_on(ssh_sim_pod(tmp_path / "file" / "state"), Recording())
    observed = await observe_pod(handle.agent)
    assert not observed.reachable
    assert "setting up the simulated GPUs failed" in observed.error
