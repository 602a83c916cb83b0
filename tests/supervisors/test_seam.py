"""The supervisor seam: chosen once per pod from its spec and its init (``PodHandle.supervisor_for``),
and each supervisor's start request as the pod agent receives it (a fake transport records it)."""

from __future__ import annotations

from pathlib import Path

from gpumod.drivers.agent import PodAgent, split_request
from gpumod.drivers.base import Launch, Probe
from gpumod.drivers.supervisors import ProcessSupervisor, SystemdSupervisor, make_supervisor
from gpumod.drivers.transports.fake import FakeTransport
from gpumod.spec.models import PodSpec
from gpumod.wiring import open_pod

SYSTEMD_ROOT = {"pid1": "systemd", "uid": 0, "systemd": True}
SYSTEMD_USER = {"pid1": "systemd", "uid": 1000, "systemd": True, "user_systemd": True}
TINI = {"pid1": "tini", "uid": 0, "systemd": False}
LAUNCH = Launch("web", ("srv", "--port", "80"), (("A", "1"),), None, 80, (0,), "h", "command", "none",
                (Probe("health", "/h"),))


def pod(host: str, supervisor: str = "auto") -> PodSpec:
    return PodSpec.model_validate({
        "kind": "Pod", "name": "box", "host": host, "mode": "m", "supervisor": supervisor,
        "gpus": [{"name": "NVIDIA GeForce RTX 4090", "memory_mb": 24564}],
    })


def test_chosen_once_per_pod_from_its_setting_and_init(tmp_path: Path) -> None:
    ssh = open_pod(pod("ssh://root@192.0.2.1:22"))  # nothing is contacted
    chosen = ssh.supervisor_for(SYSTEMD_ROOT, template_dir=tmp_path)
    assert isinstance(chosen, SystemdSupervisor) and (chosen.scope, chosen.template_dir) == ("system", tmp_path)
    assert isinstance(ssh.supervisor_for(SYSTEMD_USER), SystemdSupervisor)
    assert ssh.supervisor_for(SYSTEMD_USER).scope == "user"  # type: ignore[attr-defined]
    assert isinstance(ssh.supervisor_for(TINI), ProcessSupervisor)
    forced = open_pod(pod("ssh://root@192.0.2.1:22", supervisor="process"))
    assert isinstance(forced.supervisor_for(SYSTEMD_ROOT), ProcessSupervisor)
    assert all(s.agent is ssh.agent for s in (chosen, ssh.supervisor_for(TINI)))


async def test_the_process_start_carries_the_secrets_for_the_service_env() -> None:
    fake = FakeTransport().push_json({"pid": 7, "started_at": 1.0})
    agent = PodAgent(fake, pod="box", state_dir="~/.gpumod")
    await make_supervisor(agent, "process").start(LAUNCH, {"HF_TOKEN": "hf_secret"})
    args = split_request(fake.calls[0].stdin)[1]["args"]
    assert args["secret_env"] == {"HF_TOKEN": "hf_secret"} and "supervisor" not in args


async def test_the_systemd_start_carries_the_unit_and_keeps_secrets_to_its_env_file() -> None:
    fake = FakeTransport().push_json({"unit": "gpumod-box-web.service", "warnings": []})
    agent = PodAgent(fake, pod="box", state_dir="~/.gpumod")
    await make_supervisor(agent, "systemd", "user").start(LAUNCH, {"HF_TOKEN": "hf_secret"})
    args = split_request(fake.calls[0].stdin)[1]["args"]
    assert (args["supervisor"], args["unit"], args["scope"]) == ("systemd", "gpumod-box-web.service", "user")
    assert 'ExecStart="srv" "--port" "80"' in args["unit_text"] and "hf_secret" not in args["unit_text"]
    assert "EnvironmentFile=%h/.gpumod/pods/box/secrets/web.env" in args["unit_text"]
    assert 'HF_TOKEN="hf_secret"' in args["env_file_text"] and args["secret_env"] == {}
