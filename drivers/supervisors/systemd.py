"""Render a service's systemd unit from a jinja2 template, on the client.

Why on the client: the pod needs nothing but Python (no jinja2 there); the rendered text travels
in the pod agent's payload and the agent writes it only if it changed (then ``daemon-reload``).
The shipped template is ``drivers/templates/service.unit.j2``; a spec repo may override it with
its own ``templates/service.unit.j2`` (pass that ``templates`` directory as ``template_dir``).
Rendering is strict (``StrictUndefined``), unescaped (a unit is not HTML), and every value handed
to the template is already escaped for a unit file, so a template only places them.

Secrets never reach the unit: they go to the ``EnvironmentFile`` (``env_file_path``, mode 0600 on
the pod) whose text ``render_env_file`` makes from the secret env; the unit only names the file.
"""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a unit is rendered: most commands never do
    import jinja2

from gpumod.drivers.base import Launch
from gpumod.drivers.supervisors.systemd_syntax import (
    ENV_KEY,
    exec_line,
    systemd_quote,
    unit_name,
    unit_path,
)
from gpumod.errors import GpumodError

__all__ = [
    "TEMPLATE", "UnitTemplateError", "env_file_path", "log_path", "render_unit", "seconds", "systemd_quote", "unit_name",
]

TEMPLATE = "service.unit.j2"
BUILTIN_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
DEFAULT_RESTART_SEC = 5.0


class UnitTemplateError(GpumodError):
    """A unit template (the shipped one or a spec repo's override) does not render."""

    hint = "fix templates/service.unit.j2 in the spec repo (or delete it to use gpumod's own)"


def log_path(state_dir: str, pod: str, name: str) -> str:
    """Where the pod agent keeps the service's log (as the agent computes it, before ``~`` expansion)."""
    return f"{state_dir.rstrip('/')}/pods/{pod}/logs/{name}.log"


def env_file_path(state_dir: str, pod: str, name: str) -> str:
    """The service's secrets file on the pod (the agent writes it 0600 in a 0700 directory)."""
    return f"{state_dir.rstrip('/')}/pods/{pod}/secrets/{name}.env"


def seconds(value: float) -> str:
    """A systemd time span: ``30s``, ``2500ms``."""
    ms = round(float(value) * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _environment(env: tuple[tuple[str, str], ...]) -> list[str]:
    items = []
    for key, value in env:
        if not ENV_KEY.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        items.append(systemd_quote(f"{key}={value}", dollar=False))
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
    if not launch.argv:
        raise ValueError(f"service {launch.name} has an empty command line")
    variables = {
        "pod": pod,
        "name": launch.name,
        "unit": unit_name(pod, launch.name),
        "driver": launch.driver,
        "port": launch.port,
        "gpus": list(launch.gpus),
        "spec_hash": launch.spec_hash,
        "argv": list(launch.argv),
        "state_dir": state_dir,
        "scope": scope,
        "description": f"gpumod {pod}/{launch.name} ({launch.driver})".replace("%", "%%"),
        "exec_start": exec_line(launch.argv),
        "working_directory": unit_path(launch.cwd) if launch.cwd else "",
        "environment": _environment(launch.env),
        "env_file": unit_path(env_file) if env_file else "",
        "log": unit_path(log_path),
        "restart_sec": seconds(restart_sec),
        "stop_timeout": seconds(launch.stop_timeout_s),
        "wanted_by": "multi-user.target" if scope == "system" else "default.target",
    }
    import jinja2

    env = _environment_for(template_dir)
    try:
        template = env.get_template(TEMPLATE)
        return template.render(**variables)
    except jinja2.TemplateError as err:
        where = getattr(err, "filename", None) or str(BUILTIN_TEMPLATES / TEMPLATE)
        line = getattr(err, "lineno", None)
        raise UnitTemplateError(f"{where}{f':{line}' if line else ''}: unit template: {err}") from err
