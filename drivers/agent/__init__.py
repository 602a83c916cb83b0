"""PodAgent: gpumod's hands on a pod, one transport round trip per call.

Each method runs ``<python> -S -c BOOT`` (``boot.py``) with the key of the stdlib-only agent
script (the sha256 of its source) and a JSON payload on STDIN. The pod keeps the compiled agent
under ``<state_dir>/agent/``, so a call sends only the key and the payload; on a cache miss the
pod answers ``{"agent_cache": "miss"}`` (exit 3) and the call is sent again with the source,
under ``BOOT_SEND`` (``boot_send.py``), which caches it. The
script is several files (``AGENT_PARTS``, see ``podside.py``) concatenated by ``agent_script()``.
Nothing has to be installed on the pod but Python >= 3.8, the same code runs locally and over
SSH, and secrets travel only in the payload (never in argv, never in a record file).

A pod whose GPUs are simulated (``sim=``) checks its simulated GPUs in the same round trip as
the first call (``podside.sim_ready``); when they need the full set-up (gpumod's sim modules on
the pod), ``setup_sim`` runs it once and the call is sent again.

A non-zero exit, non-JSON output or an ``{"error": ...}`` answer raises ``PodError``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from gpumod.drivers.base import HttpAnswer, HttpCall, Launch
from gpumod.errors import PodError
from gpumod.ports import CommandResult, Transport

__all__ = [
    "AGENT_PARTS", "BOOT", "BOOT_SEND", "CACHE_MISS_RETURNCODE", "MARKER", "SIM_SETUP_RETURNCODE", "PodAgent",
    "agent_key", "agent_script", "build_request", "split_request",
]

MARKER = b"\n#--gpumod-payload--\n"  # the lock holder's framing (lock.py)
_HERE = Path(__file__).parent
BOOT = (_HERE / "boot.py").read_text().partition("# --boot--\n")[2]  # runs the agent cached on the pod
BOOT_SEND = (_HERE / "boot_send.py").read_text().partition("# --boot--\n")[2]  # ... sent along: check, cache, run
CACHE_MISS_RETURNCODE = 3  # BOOT: {"agent_cache": "miss"}
SIM_SETUP_RETURNCODE = 4  # podside.main: {"sim_setup": "needed"}
AGENT_PARTS = (  # in order: each part uses only the ones before it
    _HERE.parent / "probes" / "systemd.py",
    _HERE.parent / "supervisors" / "systemd_syntax.py",
    _HERE / "podside_base.py",
    _HERE / "podside_systemd.py",
    _HERE / "podside_units.py",
    _HERE.parent / "provision" / "podside_setup.py",  # setup facts ride in the observation (issue 9)
    _HERE / "podside.py",
)
_FUTURE = b"from __future__ import annotations"
_DEFAULT_TIMEOUT_S = 60.0
RECORD_STOP_BUDGET_S = 3600.0  # a stop whose timeout only the pod's record knows: the transport's patience


@lru_cache(maxsize=1)
def agent_script() -> bytes:
    """The pod-side script exactly as sent: the parts, each without its ``__future__`` import
    (allowed only at the top of a script: it is put there once)."""
    chunks = [_FUTURE + b"\n"]
    for part in AGENT_PARTS:
        lines = [ln for ln in part.read_bytes().splitlines() if ln.strip() != _FUTURE]
        chunks.append(b"# ---- gpumod agent part: %s ----\n" % part.name.encode())
        chunks.append(b"\n".join(lines).rstrip(b"\n") + b"\n\n")
    return b"".join(chunks)


@lru_cache(maxsize=1)
def agent_key() -> bytes:
    """The sha256 (hex) of ``agent_script()``: the name of the compiled agent cached on a pod."""
    return hashlib.sha256(agent_script()).hexdigest().encode()


def build_request(payload: Mapping[str, Any], *, with_script: bool = True) -> bytes:
    """What goes on BOOT's stdin: ``<key> <length>\\n``, the script (or nothing, to run the one
    cached on the pod), the JSON payload."""
    script = agent_script() if with_script else b""
    return b"%s %d\n" % (agent_key(), len(script)) + script + json.dumps(payload).encode()


def split_request(stdin: bytes) -> tuple[bytes, dict]:
    """Inverse of ``build_request`` (for fakes and tests): (script or b"", payload)."""
    head, _, rest = stdin.partition(b"\n")
    size = int(head.split()[1])
    return rest[:size], json.loads(rest[size:])


def launch_payload(launch: Launch) -> dict:
    return {
        "name": launch.name,
        "argv": list(launch.argv),
        "env": [list(kv) for kv in launch.env],
        "cwd": launch.cwd,
        "port": launch.port,
        "gpus": list(launch.gpus),
        "spec_hash": launch.spec_hash,
        "driver": launch.driver,
        "sleep": launch.sleep,
        "probes": [asdict(p) for p in launch.probes],
        "stop_timeout_s": launch.stop_timeout_s,
        "meta": {k: v for k, v in launch.meta},
    }


def _tail(data: bytes, lines: int = 12) -> str:
    text = data.decode("utf-8", "replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def _answer(stdout: bytes) -> Any:
    try:
        return json.loads(stdout.decode("utf-8", "replace").strip() or "null")
    except ValueError:
        return None


class PodAgent:
    """Runs the pod agent on one pod through a transport.

    ``sim``: ``{"dir", "gpus"}`` of a pod whose GPUs are simulated, checked on the pod with the
    next call; ``on_sim(info)`` gets what the pod answered (``{"bin", "dir", "path", "python"}``)
    and ``setup_sim()`` does the full set-up when the pod says it is needed."""

    def __init__(
        self,
        transport: Transport,
        *,
        pod: str,
        state_dir: str,
        python: str = "python3",
        env: Mapping[str, str] | None = None,
        sim: Mapping[str, Any] | None = None,
        on_sim: Callable[[dict], None] | None = None,
        setup_sim: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.transport = transport
        self.pod = pod
        self.state_dir = state_dir
        self.python = python
        self.env = dict(env or {})
        self.sim = dict(sim) if sim else None
        self.on_sim = on_sim
        self.setup_sim = setup_sim
        self._resent = False  # the last call missed the cache and sent the script
        self._uncached = False  # ...and the next one missed again: the pod cannot keep it, always send it

    async def _run(self, payload: Mapping[str, Any], timeout: float) -> tuple[CommandResult, Any]:
        """One round trip; on a cache miss, a second one with the script."""
        # -S: the agent is stdlib-only, skip site-packages
        boot = BOOT_SEND if self._uncached else BOOT
        result = await self.transport.run(
            [self.python, "-S", "-c", boot], stdin=build_request(payload, with_script=self._uncached), timeout=timeout
        )
        answer = _answer(result.stdout)
        if result.returncode == CACHE_MISS_RETURNCODE and answer == {"agent_cache": "miss"}:
            self._uncached, self._resent = self._resent, True
            result = await self.transport.run(
                [self.python, "-S", "-c", BOOT_SEND], stdin=build_request(payload), timeout=timeout
            )
            answer = _answer(result.stdout)
        elif not self._uncached:
            self._resent = False  # a hit: the pod keeps the agent
        return result, answer

    async def _call(self, op: str, args: Mapping[str, Any], timeout: float = _DEFAULT_TIMEOUT_S) -> Any:
        payload = {"op": op, "pod": self.pod, "state_dir": self.state_dir, "env": self.env, "args": dict(args)}
        if self.sim is not None:
            payload["sim"] = self.sim
        result, answer = await self._run(payload, timeout)
        if self.sim is not None and result.returncode == SIM_SETUP_RETURNCODE and answer == {"sim_setup": "needed"}:
            if self.setup_sim is None:
                raise PodError(self.pod, "its simulated GPUs are not set up")
            await self.setup_sim()
            result, answer = await self._run(payload, timeout)
        if isinstance(answer, dict) and "error" in answer and len(answer) == 1:
            raise PodError(self.pod, f"{op}: {answer['error']}")
        if result.returncode != 0 or answer is None:
            detail = _tail(result.stderr) or _tail(result.stdout) or "no output"
            hint = ""
            if result.returncode == 127:
                hint = f"is {self.python} (Python >= 3.8) installed on the pod?"
            raise PodError(self.pod, f"the pod agent failed ({op}, exit {result.returncode}): {detail}", hint=hint)
        if "sim" in payload and isinstance(answer, dict) and set(answer) == {"sim", "result"}:
            self.sim = None
            if self.on_sim is not None:
                self.on_sim(answer["sim"])
            answer = answer["result"]
        return answer

    async def observe(
        self,
        probe: bool = True,
        names: Sequence[str] | None = None,
        *,
        gpus: bool = True,
        init: bool = True,
        setup: Mapping[str, Any] | None = None,
        unchanged: Mapping[str, str] | None = None,
        wait_s: float = 0.0,
        gpus_after: bool = False,
    ) -> dict:
        """GPUs, compute apps, every recorded service (liveness, session pids, probe answers; for
        a systemd unit also ``unit``: states, ``nrestarts``, ``crash_loop``) and ``init``
        (``{"pid1", "uid", "systemd", "user_systemd"}``, for ``supervisors.choose_supervisor``).
        ``gpus=False`` / ``init=False`` leave out nvidia-smi / the init probe (cheap health polls).
        ``setup``: the setup probe's arguments (``provision.setup_probe_args``) of a pod with a
        ``setup:`` block; its raw facts come back under ``setup`` in the same round trip.
        ``unchanged``: {service: the ``seen`` digest of its last entry, or ""}: entries carry
        their ``seen``, and the pod observes again for up to ``wait_s`` seconds (at most
        ``podside.WAIT_LIMIT_S``) until one of those services reads differently (a health wait).
        ``gpus_after``: the answer carries ``gpus_after``, what ``gpus()`` answers, read once the
        observation is over (in the same round trip)."""
        args: dict[str, Any] = {"probe": probe, "gpus": gpus, "init": init}
        if setup is not None:
            args["setup"] = dict(setup)
        if names is not None:
            args["names"] = list(names)
        if unchanged:
            args["unchanged"] = dict(unchanged)
            args["wait_s"] = max(0.0, wait_s)
        if gpus_after:
            args["gpus_after"] = True
        return await self._call("observe", args, timeout=45.0 + max(0.0, wait_s))

    async def start(
        self,
        launch: Launch,
        *,
        secret_env: Mapping[str, str] | None = None,
        supervisor_args: Mapping[str, Any] | None = None,
    ) -> dict:
        """Start the service and record it; refused if it is already alive.

        Without ``supervisor_args`` the agent spawns it detached (own session), ``secret_env`` in
        its environment. ``supervisor_args`` is the rest of the request of another supervisor
        (``supervisors.SystemdSupervisor`` builds it: the unit, its text, its secrets file); call
        the pod's ``Supervisor`` rather than this.
        """
        args: dict[str, Any] = {
            "launch": launch_payload(launch),
            "secret_env": dict(secret_env or {}),
            **(supervisor_args or {}),
        }
        return await self._call("start", args, timeout=30.0 + launch.stop_timeout_s)

    async def stop(self, name: str, timeout_s: float | None = None, *, forget: bool = True) -> dict:
        """TERM the service's process group, KILL after ``timeout_s``; drop the record unless ``forget=False``.

        ``timeout_s=None``: the ``stop_timeout_s`` the service was started with, from its record on
        the pod (30 s if the record has none); the round trip may then take up to ``RECORD_STOP_BUDGET_S``."""
        args = {"name": name, "timeout_s": timeout_s, "forget": forget}
        budget = RECORD_STOP_BUDGET_S if timeout_s is None else timeout_s
        return await self._call("stop", args, timeout=budget + 30.0)

    async def http(
        self,
        port: int,
        calls: Sequence[HttpCall],
        *,
        then_record: tuple[str, Mapping[str, Any]] | None = None,
        gpus_after: Callable[[dict], None] | None = None,
    ) -> list[HttpAnswer]:
        """Send the calls in order on the pod; stops after the first answer not in its ``ok_status``.
        ``then_record``: (service, fields) written in its record (``update_meta``) in the same
        round trip once every call answered ok. ``gpus_after``: gets what ``gpus()`` answers, read
        on the pod after the calls (in the same round trip)."""
        if not calls:
            if then_record:
                await self.update_meta(then_record[0], **then_record[1])
            return []
        wire = [
            {
                "method": c.method,
                "path": c.path,
                "body": c.body,
                "timeout_s": c.timeout_s,
                "ok_status": list(c.ok_status),
            }
            for c in calls
        ]
        budget = sum(c.timeout_s for c in calls) + 15.0
        args: dict[str, Any] = {"port": port, "calls": wire}
        if then_record:
            args["then_record"] = {"name": then_record[0], "fields": dict(then_record[1])}
        if gpus_after is not None:
            args["gpus_after"] = True
        answer = await self._call("http", args, timeout=budget)
        if gpus_after is not None and isinstance(answer.get("gpus_after"), dict):
            gpus_after(answer["gpus_after"])
        return [HttpAnswer(int(a["status"]), a.get("body", "")) for a in answer["answers"]]

    async def gpus(self) -> dict:
        """Only the ``nvidia-smi --query-gpu`` part: {ok, stdout, stderr, rc}."""
        return await self._call("gpus", {}, timeout=30.0)

    async def update_meta(self, name: str, *, bump_failures: bool = False, **fields: Any) -> dict:
        """Read-modify-write a service record (e.g. ``sleep_level``, ``last_failure_at``); returns it."""
        return await self._call("update_meta", {"name": name, "fields": fields, "bump_failures": bump_failures})

    async def logs(self, name: str, lines: int = 50) -> str:
        answer = await self._call("logs", {"name": name, "lines": lines})
        return str(answer.get("text", ""))

    async def forget(self, name: str) -> dict:
        """Remove the record of a service whose processes are all gone (refused while alive)."""
        return await self._call("forget", {"name": name})
