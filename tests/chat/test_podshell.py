"""`gpumod ssh` builds the system ssh argv from the pod spec, with gpumod's connection settings."""

from __future__ import annotations

from gpumod.podshell import local_argv, ssh_argv
from gpumod.spec.models import PodSpec


def pod(**fields: object) -> PodSpec:
    return PodSpec(kind="Pod", name="p", mode="m", **fields)


def test_ssh_argv_carries_port_key_jump_known_hosts_and_the_key_policy() -> None:
    spec = pod(host="ssh -p 2222 -J bastion:22 root@10.0.0.5", identity_file="/k/id", known_hosts="/k/kh")
    assert ssh_argv(spec, ["nvidia-smi", "-L"]) == [
        "ssh", "-p", "2222", "-i", "/k/id", "-o", "IdentitiesOnly=yes", "-J", "bastion:22",
        "-o", "UserKnownHostsFile=/k/kh", "-o", "StrictHostKeyChecking=yes", "root@10.0.0.5", "--", "nvidia-smi -L",
    ]
    assert ssh_argv(pod(host="ssh://me@h", accept_new_host_key=True), tty=True) == [
        "ssh", "-p", "22", "-o", "StrictHostKeyChecking=accept-new", "-t", "me@h",
    ]


def test_hostile_words_are_quoted_for_the_remote_shell() -> None:
    argv = ssh_argv(pod(host="ssh://me@h"), ["echo", "$(id)", "a b"])
    assert argv[-1] == "echo '$(id)' 'a b'"


def test_a_local_pod_runs_the_line_here() -> None:
    argv, env = local_argv(pod(host="local"), ["echo hi | tr a-z A-Z"])
    assert argv == ["/bin/sh", "-c", "echo hi | tr a-z A-Z"]
