"""The docker driver: a service is one container, run in the FOREGROUND under the pod's supervisor.

``docker run --rm`` stays attached for as long as the container lives, so the existing process
(or systemd) supervision, records, liveness and logs work unchanged: the supervisor's SIGTERM
reaches ``docker run``, which forwards it to the container (``--init`` makes a real PID 1 that
passes it on to the server); ``--stop-timeout`` bounds the daemon's own stops. The leftover of a
``docker run`` that was SIGKILLed is removed by name before the next start (``docker rm -f``).

Nothing unvetted reaches argv: every option is written ``--flag=value`` from spec fields checked
at validation time (SEC-D7..D10 in ``gpumod.spec.checks``); there is no raw ``docker_args``.
Ports are published on 127.0.0.1 (the main one on 0.0.0.0 with ``expose: true``). Environment variables
are passed by NAME (``--env=KEY``): docker copies the value from its own environment, where the
supervisor put it, so no value - secret or not - ever appears in a command line.
"""

from __future__ import annotations

import shlex

from gpumod.drivers.base import Launch, PodContext, Probe, service_launch
from gpumod.drivers.command import CommandDriver
from gpumod.drivers.flags import gpu_env
from gpumod.errors import GpumodError
from gpumod.spec.resolved import ResolvedService

CLEANUP_ARGV0 = "gpumod-docker"
NOT_FORWARDED = frozenset({"CUDA_VISIBLE_DEVICES"})  # the container sees exactly its GPUs, renumbered from 0


def container_name(pod: str, service: str) -> str:
    return f"gpumod-{pod}-{service}"


def cleanup_script(docker: list[str], name: str) -> str:
    """``docker rm -f NAME`` (a leftover, quietly), then ``exec "$@"``: the shell becomes ``docker run``."""
    return f'{shlex.join([*docker, "rm", "-f", name])} >/dev/null 2>&1; exec "$@"'


class DockerDriver(CommandDriver):
    """No sleep, HTTP health: the command driver's behaviour, with a container as the command."""

    def __init__(self) -> None:
        super().__init__("docker")

    def launch(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> Launch:
        return service_launch(
            svc,
            gpus,
            argv=self.argv(svc, gpus, ctx),
            env=gpu_env(gpus, [], svc.env),
            probes=(Probe("health", svc.health_path),),
            sleep="none",
            cwd=False,
            meta=(("image", svc.image), ("container", container_name(ctx.pod, svc.name))),
        )

    def argv(self, svc: ResolvedService, gpus: tuple[int, ...], ctx: PodContext) -> list[str]:
        """``sh -c <cleanup> gpumod-docker`` + ``docker run --rm ... IMAGE COMMAND...``."""
        if not svc.image:
            raise GpumodError(f"service {svc.name}: the docker driver needs `image`")
        docker = list(ctx.binary("docker"))
        name = container_name(ctx.pod, svc.name)
        inner = svc.container_port or svc.port
        run = [
            *docker, "run", "--rm", "--init",
            f"--name={name}",
            f"--label=gpumod.pod={ctx.pod}",
            f"--label=gpumod.service={svc.name}",
            f"--label=gpumod.spec-hash={svc.spec_hash()}",
            f"--stop-timeout={max(1, int(svc.stop_timeout_s))}",
            "--security-opt=no-new-privileges",
            f"--network={svc.network or 'bridge'}",
        ]
        if gpus:
            run.append(f'--gpus="device={",".join(str(g) for g in gpus)}"')
        run.append(f"--publish={svc.bind_host}:{svc.port}:{inner}")  # the main port alone follows expose
        run += [f"--publish=127.0.0.1:{mapping}" for mapping in svc.ports]
        run += [f"--volume={volume}" for volume in svc.volumes]
        if svc.shm_size:
            run.append(f"--shm-size={svc.shm_size}")
        keys = [k for k, _ in svc.env] + [k for k, _ in svc.secrets]
        run += [f"--env={key}" for key in sorted(set(keys) - NOT_FORWARDED)]
        run.append(svc.image)
        subs = {"{port}": str(inner), "{model}": svc.model or ""}
        for item in svc.command or ():
            for key, value in subs.items():
                item = item.replace(key, value)
            run.append(item)
        return ["sh", "-c", cleanup_script(docker, name), CLEANUP_ARGV0, *run]
