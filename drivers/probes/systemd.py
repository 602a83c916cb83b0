"""Pure readers of ``systemctl show`` output, shared by gpumod and the pod agent.

``systemctl show -p A,B,C unit1 unit2`` prints one block of ``Key=Value`` lines per unit, blocks
separated by a blank line, with the properties in systemd's internal order, NOT the order of
``-p`` (systemd #4907). So the output is read as Key=Value lines split on the first ``=`` and
blocks are matched by their ``Id``; ``--value`` is never used with several properties. A unit
that does not exist still gets a block (``LoadState=not-found``, ``ActiveState=inactive``).

``agent_script()`` sends this file to the pod as part of the agent: standard library only,
Python 3.8 syntax, no imports from gpumod.
"""

from __future__ import annotations

SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "Result",
    "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "ControlGroup", "NeedDaemonReload",
)
ALIVE_STATES = ("active", "reloading")
USABLE_SYSTEM_STATES = ("running", "degraded", "starting")
RECENT_RESTART_S = 30.0  # a unit restarted by systemd this recently is still "crash looping"...
RESTARTS_FOR_LOOP = 3  # ...once it has been restarted this often (one restart after a crash is not a loop)


def parse_show(text: str) -> list:
    """Blocks of ``Key=Value`` lines → one dict per block, in output order."""
    blocks = []
    current: dict = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def units_by_id(text: str) -> dict:
    """``systemctl show`` output of several units → {Id: properties}."""
    return {block["Id"]: block for block in parse_show(text) if block.get("Id")}


def _int(value) -> int:
    try:
        return int(str(value).strip() or 0)
    except ValueError:
        return 0


def unit_summary(props: dict, now_monotonic_s=None) -> dict:
    """What gpumod reads from one unit's properties.

    ``alive``: active (or reloading) with a main process. ``crash_loop``: systemd is restarting it
    (``activating``/``auto-restart``), gave up after restarts (``failed`` with ``NRestarts`` > 0),
    or restarted it (``RESTARTS_FOR_LOOP`` times or more) within the last ``RECENT_RESTART_S``
    seconds. ``uptime_s`` and ``exited_ago_s`` need ``now_monotonic_s`` (CLOCK_MONOTONIC of the machine, the clock of
    systemd's timestamps).
    """
    active = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    main_pid = _int(props.get("MainPID"))
    nrestarts = _int(props.get("NRestarts"))
    started_us = _int(props.get("ExecMainStartTimestampMonotonic"))
    exited_us = _int(props.get("ExecMainExitTimestampMonotonic"))
    uptime = None
    exited_ago = None
    if now_monotonic_s is not None:
        if started_us and main_pid:
            uptime = max(0.0, now_monotonic_s - started_us / 1e6)
        if exited_us:
            exited_ago = max(0.0, now_monotonic_s - exited_us / 1e6)
    alive = active in ALIVE_STATES and main_pid > 0
    crash_loop = (
        sub == "auto-restart"
        or (active == "failed" and nrestarts > 0)
        or (alive and nrestarts >= RESTARTS_FOR_LOOP and uptime is not None and uptime < RECENT_RESTART_S)
    )
    return {
        "unit": props.get("Id", ""),
        "load_state": props.get("LoadState", ""),
        "active_state": active,
        "sub_state": sub,
        "result": props.get("Result", ""),
        "main_pid": main_pid,
        "nrestarts": nrestarts,
        "control_group": props.get("ControlGroup", ""),
        "alive": alive,
        "crash_loop": crash_loop,
        "uptime_s": uptime,
        "exited_ago_s": exited_ago,
    }


def manager_usable(props: dict) -> bool:
    """``systemctl show -p Version,SystemState`` of a manager: does it answer and run?"""
    return bool(props.get("Version")) and props.get("SystemState", "") in USABLE_SYSTEM_STATES
