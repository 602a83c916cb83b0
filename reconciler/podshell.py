"""``gpumod ssh DIR POD [CMD...]`` and ``gpumod shell DIR POD``: a terminal on a pod.

The connection parameters are the pod spec's, as gpumod itself uses them: host, port, user,
``-J`` jump hosts, identity file, known_hosts file, and whether an unknown host key may be
accepted (``StrictHostKeyChecking=accept-new``, else ``yes``). The argv is built here (pure,
tested) and the system ``ssh`` replaces this process (``os.execvp``), so the terminal, Ctrl+C and
the exit status are ssh's. A local or simulated pod is this machine: the command runs here (for
a sim pod with its GPUs' ``nvidia-smi`` first on PATH), or ``$SHELL`` opens.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from gpumod.errors import GpumodError

if TYPE_CHECKING:
    from gpumod.spec.models import PodSpec

__all__ = ["local_argv", "shell", "ssh", "ssh_argv"]


def ssh_argv(pod: PodSpec, command: Sequence[str] = (), *, tty: bool = False) -> list[str]:
    """The system ``ssh`` command line that reaches ``pod`` like gpumod does."""
    from gpumod.spec import parse_host

    host = parse_host(pod.host)
    if host.kind != "ssh" or not host.host:
        raise ValueError(f"pod {pod.name} is not an SSH pod")
    argv = ["ssh", "-p", str(host.port)]
    key = pod.identity_file or host.key
    if key:
        argv += ["-i", os.path.expanduser(key), "-o", "IdentitiesOnly=yes"]
    if host.jump:
        argv += ["-J", host.jump]
    if pod.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(pod.known_hosts)}"]
    argv += ["-o", f"StrictHostKeyChecking={'accept-new' if pod.accept_new_host_key else 'yes'}"]
    if tty:
        argv.append("-t")
    argv.append(f"{host.user}@{host.host}" if host.user else host.host)
    if command:
        argv += ["--", _line(command)]
    return argv


def local_argv(pod: PodSpec, command: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """(argv, env) to run ``command`` (or a shell) on a local or simulated pod: this machine."""
    from gpumod.spec import parse_host

    env = dict(os.environ)
    if parse_host(pod.host).kind == "sim":
        from gpumod.wiring import open_pod

        env.update(open_pod(pod).unit_env)  # the sim pod's GPUs (set up if needed): its PATH and dir
    if command:  # a shell line, as ssh gives it to the pod's shell
        return ["/bin/sh", "-c", _line(command)], env
    return [env.get("SHELL") or "/bin/sh"], env


def _line(command: Sequence[str]) -> str:
    """One argument is a shell line as written; several are words, quoted."""
    return command[0] if len(command) == 1 else shlex.join(command)


def _pod(directory: Path, name: str) -> PodSpec:
    from gpumod.spec import load_specs

    specs = load_specs(directory)
    pod = specs.pod(name)
    if pod is None:
        raise GpumodError(
            f"no pod named {name} in {directory}", hint=f"pods: {', '.join(p.name for p in specs.pods) or 'none'}"
        )
    return pod


def _exec(directory: Path, pod_name: str, command: Sequence[str], tty: bool) -> None:
    from gpumod.chat.cli import fail
    from gpumod.spec import parse_host

    try:
        pod = _pod(directory, pod_name)
        if parse_host(pod.host).kind == "ssh":
            argv, env = ssh_argv(pod, command, tty=tty), None
        else:
            argv, env = local_argv(pod, command)
        try:
            os.execvpe(argv[0], argv, env) if env is not None else os.execvp(argv[0], argv)
        except OSError as e:
            raise GpumodError(f"cannot run {argv[0]}: {e.strerror or e}", hint="is it installed and on PATH?") from None
    except GpumodError as e:
        fail(e)


def ssh(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    pod: str = typer.Argument(..., help="the pod", show_default=False),
    command: Optional[List[str]] = typer.Argument(
        None, help="a command to run there (else a login shell)", show_default=False
    ),
) -> None:
    """Run a command on POD over SSH with gpumod's connection settings (local/sim pods: here)."""
    _exec(directory, pod, [*(command or []), *ctx.args], tty=False)


def shell(
    directory: Path = typer.Argument(..., help="spec directory (or one YAML file)", show_default=False),
    pod: str = typer.Argument(..., help="the pod", show_default=False),
) -> None:
    """An interactive shell on POD (ssh -t; local/sim pods: $SHELL here)."""
    _exec(directory, pod, [], tty=True)
