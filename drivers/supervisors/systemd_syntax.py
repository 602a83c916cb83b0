"""systemd's quoting rules, as pure stdlib functions shared by gpumod and the pod agent.

Why a module of its own: the unit text is rendered on the client (``systemd.render_unit``), but
the pod agent must recognise and rewrite the same ``ExecStart=`` words (it resolves a bare program
name on the pod's PATH), so ``agent_script()`` sends this file to the pod as part of the agent.
Hence: standard library only, Python 3.8 syntax, no imports from gpumod.

The rules (man systemd.service "Command lines", systemd.unit "Specifiers", systemd.exec
"EnvironmentFile="), verified against systemd 252:
  * in a unit file every value has ``%`` specifiers expanded: a literal ``%`` is ``%%``;
  * ``ExecStart=`` words are split C-style: inside ``"..."`` a backslash escapes ``\\`` and ``"``;
    ``$VAR``/``${VAR}`` is substituted in the arguments: ``$`` is ``$$`` there;
  * ``Environment=`` uses the same word quoting but does NOT substitute ``$``;
  * an ``EnvironmentFile=`` is not a unit file: no specifiers; in ``"..."`` the characters
    ``\\ " $ ` `` are escaped with a backslash and a newline is kept as is.
  * the program (first word of ``ExecStart=``) is unquoted first, then a leading ``- @ : + !`` is
    read as a prefix (ignore failure, argv[0], no substitution, privileges...), and its path is
    never ``$``-substituted: ``$`` stays single there, a program may not start with a prefix, and
    systemd refuses quotes and backslashes in it ("Executable name contains special characters");
  * paths (``WorkingDirectory=``, ``StandardOutput=append:``, ``EnvironmentFile=``) are taken
    literally after specifiers (no quoting: a quote or backslash is part of the name), but the
    line is stripped (trailing blanks lost), a trailing backslash joins the NEXT line to it, and a
    ``..`` component makes systemd reject the setting; an ``EnvironmentFile=`` path is moreover a
    glob(3) pattern: ``\\ * ? [`` are escaped there with a backslash.

Defence in depth: whatever the spec checks, nothing that could end a line (a control character:
newline, CR, NUL...) is ever written into a unit; every function here raises ``ValueError``.
"""

from __future__ import annotations

import re

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a pod or service name, as the agent accepts it
UNIT_PREFIX = "gpumod-"
PROGRAM_PREFIXES = "-@:+!"


def check_line_safe(value, what: str = "value") -> str:
    """``value`` as text, refused (``ValueError``) if it holds a control character (newline, CR,
    NUL, tab, DEL...): in a unit file it would end the line and start a directive of its own."""
    text = str(value)
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError("%s contains the control character %r, which a systemd unit cannot hold: %r"
                             % (what, ch, text[:80]))
    return text


def systemd_quote(value: str, dollar: bool = True, what: str = "value") -> str:
    """One word for a unit file, double-quoted (``dollar=False`` for ``Environment=`` items and the
    program). A control character is refused (``ValueError``), never escaped."""
    out = []
    for ch in check_line_safe(value, what):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "%":
            out.append("%%")
        elif ch == "$" and dollar:
            out.append("$$")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def exec_line(argv) -> str:
    """The value of ``ExecStart=``: every argv item quoted (so no item is ever re-split); an item
    starting with ``~/`` starts at the unit's home (``%h``), as the process supervisor expands it."""
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("an empty command line")
    args = [_exec_item(a, True, "argument %d" % i) for i, a in enumerate(argv[1:], 1)]
    return " ".join([exec_program(argv[0])] + args)


def exec_program(program: str) -> str:
    """The first word of ``ExecStart=``: an absolute path, ``~/...`` or a bare program name (the
    pod agent resolves it on the pod's PATH), never starting with one of systemd's prefixes."""
    program = check_line_safe(program, "the program")
    if not program or program[0] in PROGRAM_PREFIXES:
        raise ValueError("the program %r cannot start a systemd command line (empty, or starts with one of %s)"
                         % (program, " ".join(PROGRAM_PREFIXES)))
    if any(ch in program for ch in "\"'\\"):
        raise ValueError("the program %r holds a quote or a backslash, which systemd refuses in an "
                         "executable path" % program)
    if "/" in program and not (program.startswith("/") or program.startswith("~/")):
        raise ValueError("the program %r is a relative path: write it absolute (or ~/...), or a bare name "
                         "found on the pod's PATH" % program)
    return _exec_item(program, False, "the program")


def _exec_item(item: str, dollar: bool, what: str) -> str:
    if item != "~" and not item.startswith("~/"):
        return systemd_quote(item, dollar, what)
    quoted = systemd_quote(item[2:], dollar, what) if item != "~" else ""
    if quoted.startswith('"'):
        return '"%h/' + quoted[1:]
    return "%h/" + quoted if quoted else "%h"


def unit_path(path: str, what: str = "path") -> str:
    """A path as a unit file value: ``~`` becomes ``%h`` (the unit's home), ``%`` is escaped.

    A relative path is taken relative to the home directory, like the process supervisor, whose
    services start in the agent's working directory (the login's home). Refused (``ValueError``):
    a control character, a ``..`` component, a trailing blank or backslash (see the module doc).
    """
    path = check_line_safe(path, what)
    if not path.strip():
        raise ValueError("%s is empty" % what)
    if ".." in path.split("/"):
        raise ValueError("%s %r has a '..' component: write it normalised" % (what, path))
    if path != path.rstrip() or path.endswith("\\"):
        raise ValueError("%s %r ends with a blank or a backslash, which systemd would drop or join "
                         "with the next line" % (what, path))
    if path == "~":
        return "%h"
    if path.startswith("~/"):
        return "%h/" + path[2:].replace("%", "%%")
    if not path.startswith("/"):
        return "%h/" + path.replace("%", "%%")
    return path.replace("%", "%%")


def unit_glob_path(path: str, what: str = "path") -> str:
    """``unit_path`` for ``EnvironmentFile=``, which systemd expands as a glob(3) pattern when it
    starts the service: ``\\ * ? [`` in the name are escaped with a backslash."""
    out = []
    for ch in unit_path(path, what):
        out.append("\\" + ch if ch in "\\*?[" else ch)
    return "".join(out)


def unit_name(pod: str, service: str) -> str:
    """``gpumod-<pod>-<service>.service`` (both names are validated by the spec, and again here)."""
    for what, name in (("pod", pod), ("service", service)):
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise ValueError("invalid %s name %r" % (what, name))
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


def env_file_value(text: str, key: str):
    """The value of ``key`` in a text written by ``render_env_file`` (None when absent)."""
    for line in text.splitlines():
        name, sep, quoted = line.partition("=")
        if sep and name == key and len(quoted) >= 2 and quoted[0] == quoted[-1] == '"':
            out, escaped = [], False
            for ch in quoted[1:-1]:
                if escaped or ch != "\\":
                    out.append(ch)
                    escaped = False
                else:
                    escaped = True
            return "".join(out)
    return None
