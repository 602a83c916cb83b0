"""Reading a rendered unit back as systemd 252 reads it (the subset gpumod writes), for tests.

Why: the renderer's escaping is only proven by reading its output with systemd's rules, not by
comparing strings it produced itself. ``lines`` is the unit file parser (sections, ``Key=Value``,
comments, and the two things that let a value reach another line: a line break inside it and a
trailing backslash, which joins the next line); ``words`` is ``extract_first_word`` with
``EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE`` (``ExecStart=``, ``Environment=``); ``specifiers`` expands
``%%`` and ``%h``; ``glob_literal`` reads an ``EnvironmentFile=`` pattern; ``exec_args`` applies
the ``$$`` substitution systemd does when it runs the command. Anything else (another specifier,
a lone ``$``, an unknown escape) fails the test: gpumod never writes it.
"""

from __future__ import annotations

import re

ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b",
           "f": "\f", "v": "\v", "s": " "}


def lines(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting, in order; AssertionError on anything not a comment,
    a blank line, a ``[Section]`` or a ``Key=Value`` whose line stands alone."""
    assert "\r" not in text and "\0" not in text, "a CR or NUL in a unit file"
    out: list[tuple[str, str, str]] = []
    section = ""
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number} continues on the next one: {raw!r}"
        if line.startswith("["):
            assert line.endswith("]"), f"line {number}: {raw!r}"
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        assert eq and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"line {number} is no setting: {raw!r}"
        assert section, f"line {number} is outside a section: {raw!r}"
        out.append((section, key.strip(), value.strip()))
    return out


def words(value: str, shell: bool = False) -> list[str]:
    """Split a value into words: double/single quotes group, a backslash escapes (C-style).

    ``shell=True`` reads instead the shell quoting systemd uses to SHOW a command line (in
    ``systemd-analyze`` dumps): a backslash keeps the next character as is."""
    out: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            return out
        word: list[str] = []
        quote = ""
        while i < n:
            c = value[i]
            if quote and c == quote:
                quote = ""
            elif not quote and c in "\"'":
                quote = c
            elif not quote and c in " \t":
                break
            elif c == "\\":
                i += 1
                assert i < n, f"a trailing backslash in {value!r}"
                e = value[i]
                if shell:
                    word.append(e)
                elif e == "x":
                    word.append(chr(int(value[i + 1:i + 3], 16)))
                    i += 2
                else:
                    assert e in ESCAPES, f"unknown escape \\{e} in {value!r}"
                    word.append(ESCAPES[e])
            else:
                word.append(c)
            i += 1
        assert not quote, f"an unterminated quote in {value!r}"
        out.append("".join(word))


def specifiers(text: str, home: str) -> str:
    """``%%`` → ``%``, ``%h`` → ``home``; any other specifier (or a lone ``%`` at the end) fails."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "%":
            spec = text[i + 1:i + 2]
            assert spec in ("%", "h"), f"unexpected specifier %{spec} in {text!r}"
            out.append("%" if spec == "%" else home)
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def glob_literal(pattern: str) -> str:
    """The one file a glob(3) pattern without wildcards names (``EnvironmentFile=``): ``\\X`` is X."""
    assert not re.search(r"(?<!\\)[*?[]", pattern.replace("\\\\", "")), f"a wildcard in {pattern!r}"
    return re.sub(r"\\(.)", r"\1", pattern)


def exec_args(args: list[str]) -> list[str]:
    """The ``$`` substitution of ``ExecStart=`` arguments at run time: ``$$`` → ``$``; a lone
    ``$`` (a variable reference) fails."""
    out = []
    for arg in args:
        assert "$" not in arg.replace("$$", ""), f"a variable reference in {arg!r}"
        out.append(arg.replace("$$", "$"))
    return out
