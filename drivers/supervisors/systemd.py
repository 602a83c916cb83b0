"""Render a service's systemd unit from a jinja2 template, on the client.

Why on the client: the pod needs nothing but Python (no jinja2 there); the rendered text travels
in the pod agent's payload and the agent writes it only if it changed (then ``daemon-reload``).
The shipped template is ``drivers/templates/service.unit.j2``; a spec repo may override it with
its own ``templates/service.unit.j2`` (pass that ``templates`` directory as ``template_dir``).
Rendering is strict (``StrictUndefined``), unescaped (a unit is not HTML), and every value handed
to the template is already escaped for a unit file (``state_dir`` as a unit path), so a template
only places them; ``argv`` is the raw list, for ``argv | map('sdquote')``. A value that no quoting
makes safe - a control character (newline, CR, NUL...) anywhere, a ``..`` path, a program starting
with one of systemd's prefixes - is refused with ``UnitValueError`` (the spec checks them too; this
is defence in depth), and a template filter refuses the same.

Secrets never reach the unit: they go to the ``EnvironmentFile`` (``env_file_path``, mode 0600 on
the pod) whose text ``render_env_file`` makes from the secret env; the unit only names the file.
"""

from __future__ import annotations

import math
from pathlib import Path

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # imported when a unit is rendered: most commands never do
    import jinja2

    from gpumod.drivers.agent import PodAgent

from gpumod.drivers.base import Launch
from gpumod.drivers.supervisors.base import AgentSupervisor
from gpumod.drivers.supervisors.systemd_syntax import (
    ENV_KEY,
    check_line_safe,
    exec_line,
    render_env_file,
    systemd_quote,
    unit_glob_path,
    unit_name,
    unit_path,
)
from gpumod.errors import GpumodError

__all__ = [
    "TEMPLATE", "SystemdSupervisor", "UnitTemplateError", "UnitValueError", "env_file_path", "log_path",
    "render_unit", "seconds",
    "systemd_quote", "unit_name",
]

TEMPLATE = "service.unit.j2"
BUILTIN_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DEFAULT_RESTART_SEC = 5.0


class UnitTemplateError(GpumodError):
    """A unit template (the shipped one or a spec repo's override) does not render."""

    hint = "fix templates/service.unit.j2 in the spec repo (or delete it to use gpumod's own)"


class UnitValueError(GpumodError):
    """A value to be written into a unit cannot be written safely (see the module docstring)."""

    hint = "fix the field named above in the spec; a systemd unit value cannot hold control characters"


def log_path(state_dir: str, pod: str, name: str) -> str:
    """Where the pod agent keeps the service's log (as the agent computes it, before ``~`` expansion)."""
    return f"{state_dir.rstrip('/')}/pods/{pod}/logs/{name}.log"


def env_file_path(state_dir: str, pod: str, name: str) -> str:
    """The service's secrets file on the pod (the agent writes it 0600 in a 0700 directory)."""
    return f"{state_dir.rstrip('/')}/pods/{pod}/secrets/{name}.env"


def seconds(value: float) -> str:
    """A systemd time span: ``30s``, ``2500ms``."""
    if not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"time span {value!r} is not a finite number of seconds >= 0")
    ms = round(float(value) * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _environment(env: tuple[tuple[str, str], ...]) -> list[str]:
    items = []
    for key, value in env:
        if not ENV_KEY.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        items.append(systemd_quote(f"{key}={value}", dollar=False, what=f"the value of {key}"))
    return items


def _environment_for(template_dir: str | Path | None) -> jinja2.Environment:
    import jinja2

    search = [str(BUILTIN_TEMPLATES)]
    if template_dir is not None and (Path(template_dir) / TEMPLATE).is_file():
        search.insert(0, str(template_dir))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["sdquote"] = systemd_quote
    env.filters["sdpath"] = unit_path
    return env


def render_unit(
    launch: Launch,
    *,
    pod: str,
    state_dir: str,
    log_path: str,
    env_file: str | None,
    template_dir: str | Path | None = None,
    scope: str = "system",
    restart_sec: float = DEFAULT_RESTART_SEC,
) -> str:
    """The unit text of ``gpumod-<pod>-<launch.name>.service``.

    ``log_path``/``env_file`` are paths on the pod (a leading ``~`` becomes ``%h``: the unit's
    home); ``env_file=None`` leaves out ``EnvironmentFile=``. ``scope`` picks ``WantedBy=``.
    """
    import jinja2

    try:
        variables = _variables(launch, pod, state_dir, log_path, env_file, scope, restart_sec)
        template = _environment_for(template_dir).get_template(TEMPLATE)
        return template.render(**variables)
    except jinja2.TemplateError as err:
        where = getattr(err, "filename", None) or str(BUILTIN_TEMPLATES / TEMPLATE)
        line = getattr(err, "lineno", None)
        raise UnitTemplateError(f"{where}{f':{line}' if line else ''}: unit template: {err}") from err
    except ValueError as err:  # a value no quoting makes safe (also raised by the sdquote/sdpath filters)
        raise UnitValueError(f"service {launch.name}: cannot write its systemd unit: {err}") from err


def _variables(
    launch: Launch, pod: str, state_dir: str, log: str, env_file: str | None, scope: str, restart_sec: float
) -> dict[str, object]:
    """The template's variables, each escaped for a unit file (raises ValueError on what is not)."""
    if not launch.argv:
        raise ValueError("an empty command line")
    if scope not in ("system", "user"):
        raise ValueError(f"unknown systemd scope {scope!r} (system | user)")
    unit = unit_name(pod, launch.name)
    driver = check_line_safe(launch.driver, "the driver")
    return {
        "pod": pod,
        "name": launch.name,
        "unit": unit,
        "driver": driver.replace("%", "%%"),
        "port": int(launch.port),
        "gpus": [int(g) for g in launch.gpus],
        "spec_hash": check_line_safe(launch.spec_hash, "the spec hash"),
        "argv": list(launch.argv),
        "state_dir": unit_path(state_dir, "the pod's state_dir"),
        "scope": scope,
        "description": f"gpumod {pod}/{launch.name} ({driver})".replace("%", "%%"),
        "exec_start": exec_line(launch.argv),
        "working_directory": unit_path(launch.cwd, "the working directory (cwd)") if launch.cwd else "",
        "environment": _environment(launch.env),
        "env_file": unit_glob_path(env_file, "the secrets file path") if env_file else "",
        "log": unit_path(log, "the log path"),
        "restart_sec": seconds(restart_sec),
        "stop_timeout": seconds(launch.stop_timeout_s),
        "wanted_by": "multi-user.target" if scope == "system" else "default.target",
    }


class SystemdSupervisor(AgentSupervisor):
    """One unit per service, rendered here and installed by the pod agent (``daemon-reload``
    only when its text changed) in ``scope`` (``system`` units, or ``--user`` units)."""

    kind = "systemd"

    def __init__(
        self,
        agent: PodAgent,
        *,
        scope: str = "system",
        template_dir: str | Path | None = None,
        restart_sec: float = DEFAULT_RESTART_SEC,
    ) -> None:
        super().__init__(agent)
        self.scope = scope
        self.template_dir = template_dir
        self.restart_sec = restart_sec

    def render(self, launch: Launch) -> str:
        state_dir, pod = self.agent.state_dir, self.agent.pod
        return render_unit(
            launch,
            pod=pod,
            state_dir=state_dir,
            log_path=log_path(state_dir, pod, launch.name),
            env_file=env_file_path(state_dir, pod, launch.name),
            template_dir=self.template_dir,
            scope=self.scope,
            restart_sec=self.restart_sec,
        )

    async def start(
        self, launch: Launch, secret_env: Mapping[str, str] | None = None, *, unit_text: str | None = None
    ) -> dict:
        """``unit_text``: this text instead of the rendered unit (tests of what the pod refuses).
        The answer has ``unit``, ``scope``, ``unit_changed``, ``reloaded`` and ``warnings``."""
        request = {
            "supervisor": "systemd",
            "unit": unit_name(self.agent.pod, launch.name),
            "unit_text": unit_text if unit_text is not None else self.render(launch),
            "env_file_text": render_env_file(secret_env or {}),
            "scope": self.scope,
        }
        return await self.agent.start(launch, supervisor_args=request)
