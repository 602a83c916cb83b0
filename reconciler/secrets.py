"""Secret values, read at apply time on the machine running gpumod (impure; the spec layer is not).

A spec names where a secret comes from (``{from_env: NAME}`` or ``{from_file: PATH}``); the
resolved service carries only those references (``ResolvedService.secrets``). ``load_secret_values``
reads them just before a start, so the values go straight into the pod agent's payload (stdin of
the transport) and nowhere else: never argv, logs, plan/status JSON or the spec hash.

Every problem names the variable or file and says how to provide it, and never includes a value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from gpumod.errors import Problem, SpecError
from gpumod.logconfig import get_logger
from gpumod.spec.presets import split_source
from gpumod.spec.resolved import ResolvedService

log = get_logger("gpumod.secrets")
MAX_SECRET_BYTES = 64 * 1024
Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("secret.file_mode", detail=message)


def secret_file(path: str, origin: str, environ: Mapping[str, str] = os.environ) -> Path:
    """The file a ``from_file`` path names: ``~`` expanded, relative to the declaring spec file's folder."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME") or os.path.expanduser("~")
        return Path(home) / path[2:]
    expanded = Path(os.path.expanduser(path))  # ~user/...
    if expanded.is_absolute():
        return expanded
    spec_file, _ = split_source(origin)
    return (Path(spec_file).parent / expanded).absolute()


SECRETS_HINT = "provide the secrets named above on this machine, then run the command again"


def missing_secrets(n: int) -> str:
    return f"{n} secret(s) missing on this machine"


def load_secret_values(
    svc: ResolvedService, environ: Mapping[str, str] = os.environ, *, warn: Warn | None = None
) -> dict[str, str]:
    """``{KEY: value}`` of every secret of ``svc``; SpecError with one problem per secret not found.

    A file that other users can read or change is used, with a warning (``warn``, else the log).
    """
    warn = warn or _log_warning
    origins = dict(svc.secret_origins)
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for key, ref in svc.secrets:
        origin = origins.get(key) or svc.source
        path, line = split_source(origin)
        kind, _, target = ref.partition(":")
        if kind == "env":
            value, problem = _from_env(svc.name, key, target, environ)
        elif kind == "file":
            value, problem = _from_file(svc.name, key, secret_file(target, origin, environ), warn)
        else:
            value, problem = None, f"service {svc.name}: {key} has an unknown secret reference kind {kind!r}"
        if problem is not None:
            problems.append(Problem(path, line, problem))
        elif value is not None:
            values[key] = value
    if problems:
        raise SpecError(problems, hint=SECRETS_HINT, summary=missing_secrets(len(problems)))
    return dict(sorted(values.items()))


def _from_env(service: str, key: str, name: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    value = environ.get(name)
    if value is None:
        return None, (
            f"service {service}: {key} comes from the environment variable {name}, which is not set; "
            f"export {name} in the shell that runs gpumod (or use {{from_file: PATH}})"
        )
    if value == "":
        return None, (
            f"service {service}: {key} comes from the environment variable {name}, which is empty; "
            f"export {name} with the secret in the shell that runs gpumod"
        )
    return value, None


def _from_file(service: str, key: str, path: Path, warn: Warn) -> tuple[str | None, str | None]:
    where = f"service {service}: {key} comes from the file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, f"{where}, which does not exist; write the secret into it and chmod 600 it"
    except OSError as err:
        return None, f"{where}, which cannot be opened ({err.strerror}); check its permissions"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{where}, which is not a regular file; point from_file at the file holding the secret"
        if info.st_size > MAX_SECRET_BYTES:
            return None, f"{where}, which is larger than {MAX_SECRET_BYTES // 1024} KiB; is it the right file?"
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    except OSError as err:
        return None, f"{where}, which cannot be read ({err.strerror}); check its permissions"
    finally:
        os.close(fd)
    if info.st_mode & 0o077:
        warn(
            f"{where}, which other users can read or change (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run chmod 600 {path}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{where}, which is not UTF-8 text"
    text = text.rstrip("\r\n")
    if "\x00" in text:
        return None, f"{where}, which contains a NUL byte; an environment value cannot hold one"
    if not text:
        return None, f"{where}, which is empty; write the secret into it"
    return text, None
