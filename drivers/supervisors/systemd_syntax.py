"""systemd's quoting rules, as pure stdlib functions shared by gpumod and the pod agent.

Why a module of its own: the unit text is rendered on the client (``systemd.render_unit``), but
the pod agent must recognise and rewrite the same ``ExecStart=`` words (it resolves a bare program
name on the pod's PATH), so ``agent_script()`` sends this file to the pod as part of the agent.
Hence: standard library only, Python 3.8 syntax, no imports from gpumod.

The rules (man systemd.service "Command lines", systemd.unit "Specifiers", systemd.exec
"EnvironmentFile="), verified against systemd 252:
  * in a unit file every value has ``%`` specifiers expanded: a literal ``%`` is ``%%``;
  * ``ExecStart=`` words are split C-style: inside ``"..."`` a backslash escapes ``\\`` and ``"``,
    control characters are written ``\\xNN``; ``$VAR``/``${VAR}`` is substituted: ``$`` is ``$$``;
  * ``Environment=`` uses the same word quoting but does NOT substitute ``$``;
  * an ``EnvironmentFile=`` is not a unit file: no specifiers; in ``"..."`` the characters
    ``\\ " $ ` `` are escaped with a backslash and a newline is kept as is.
"""

from __future__ import annotations

import re

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNIT_PREFIX = "gpumod-"


def systemd_quote(value: str, dollar: bool = True) -> str:
    """One word for a unit file, double-quoted (``dollar=False`` for ``Environment=`` items)."""
    out = []
    for ch in str(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "%":
            out.append("%%")
        elif ch == "$" and dollar:
            out.append("$$")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def exec_line(argv) -> str:
    """The value of ``ExecStart=``: every argv item quoted (so no item is ever re-split); an item
    starting with ``~/`` starts at the unit's home (``%h``), as the process supervisor expands it."""
    return " ".join(_exec_item(str(a)) for a in argv)


def _exec_item(item: str) -> str:
    if item != "~" and not item.startswith("~/"):
        return systemd_quote(item)
    quoted = systemd_quote(item[2:]) if item != "~" else ""
    if quoted.startswith('"'):
        return '"%h/' + quoted[1:]
    return "%h/" + quoted if quoted else "%h"


def unit_path(path: str) -> str:
    """A path as a unit file value: ``~`` becomes ``%h`` (the unit's home), ``%`` is escaped.

    A relative path is taken relative to the home directory, like the process supervisor, whose
    services start in the agent's working directory (the login's home).
    """
    path = str(path)
    if path == "~":
        return "%h"
    if path.startswith("~/"):
        return "%h/" + path[2:].replace("%", "%%")
    if not path.startswith("/"):
        return "%h/" + path.replace("%", "%%")
    return path.replace("%", "%%")


def unit_name(pod: str, service: str) -> str:
    """``gpumod-<pod>-<service>.service`` (both names are validated by the spec)."""
    return "%s%s-%s.service" % (UNIT_PREFIX, pod, service)


def env_file_quote(value: str) -> str:
    out = []
    for ch in str(value):
        if ch in '\\"$`':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_env_file(env) -> str:
    """An ``EnvironmentFile=`` text from a mapping (or pairs); keys must be shell identifiers."""
    items = sorted(env.items()) if hasattr(env, "items") else list(env)
    lines = ["# written by gpumod: secrets of one service (mode 0600)"]
    for key, value in items:
        if not ENV_KEY.match(str(key)):
            raise ValueError("invalid environment variable name %r" % (key,))
        if "\0" in str(value):
            raise ValueError("the value of %s contains a NUL byte" % key)
        lines.append("%s=%s" % (key, env_file_quote(value)))
    return "\n".join(lines) + "\n"
