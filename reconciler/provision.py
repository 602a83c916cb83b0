"""Provisioning in the plan: a pod's ``setup:`` and its services' model downloads as plan steps.

Why a module of its own: the core plans VRAM and knows nothing of venvs or the hub; the pure
judgements live in ``gpumod.drivers.provision`` (facts, steps, disk). This module joins them to
the engine. Planning (``plan_provision``): per pod with ``setup:``, refusals first (a driver too
old, a download larger than the free disk: ``SetupRefusedError``, nothing touched), then one
``setup`` step per missing piece and one ``download`` step per service whose model (an HF repo
id) is not complete in the pod's cache — all in phase ``provision``, before any start.
Executing (``run_provision``): each setup command and each download runs as a transport
process on the pod (its process group is killed on Ctrl+C); the downloader's JSON lines become
``Progress`` events.

Where the file list of a repo comes from: the machine running gpumod asks the hub
(``$HF_ENDPOINT``, default huggingface.co; ``$HF_TOKEN`` for gated repos) for the repo's files
and sizes, for the disk check; the pod's downloader asks again for what it fetches, at the
same endpoint (passed to it), with the token on its stdin (never argv, never a file).
A model counts as cached when the cache holds a complete snapshot of its revision (the
downloader writes the ``refs/`` entry only after the last file): no hub call then.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

from gpumod.core.model import DesiredPod, ObservedPod, Plan, Step
from gpumod.drivers.provision import SetupFacts, SetupRefusedError, SetupStep, download_argv, download_need
from gpumod.drivers.provision import human_bytes, parse_event, setup_probe_args, setup_refusals, setup_steps
from gpumod.drivers.provision.download import DownloadEvent
from gpumod.errors import GpumodError
from gpumod.execute import StepOutcome
from gpumod.spec.models import PodSpec
from gpumod.spec.setup_models import ModelSource, parse_model_source

__all__ = [
    "DEFAULT_ENDPOINT", "Provision", "hub_endpoint", "hub_files", "model_source", "plan_provision",
    "run_provision", "setup_probe", "tools_dir",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
_TOKEN_SHIM = 'IFS= read -r HF_TOKEN; if [ -n "$HF_TOKEN" ]; then export HF_TOKEN; else unset HF_TOKEN; fi; exec "$@"'


def tools_dir(state_dir: str) -> str:
    """Where gpumod puts uv on a pod: under its state directory (``~/.gpumod/tools`` by default)."""
    return f"{state_dir.rstrip('/')}/tools"


def setup_probe(handle: Any) -> dict[str, Any] | None:
    """The setup probe's arguments for a ``PodHandle`` (None: the pod has no ``setup:``)."""
    setup = handle.spec.setup
    if setup is None:
        return None
    return setup_probe_args(setup, tools_dir=tools_dir(handle.agent.state_dir))


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def model_source(driver: str | None, model: str | None) -> ModelSource | None:
    """The repo a vLLM service's ``model:`` names (None: a local path, another driver, or not an id)."""
    if driver != "vllm" or not model or model.startswith(("/", "~", ".")):
        return None
    try:
        return parse_model_source(model)
    except ValueError:
        return None


def hub_files(source: ModelSource, endpoint: str, token: str | None, *, timeout: float = 30) -> list[tuple[str, int]]:
    """``(path, size)`` of every file of the repo at its revision, from the hub's model info."""
    url = f"{endpoint}/api/models/{source.repo}/revision/{quote(source.revision or 'main', safe='')}?blobs=true"
    req = urllib.request.Request(url, headers={"User-Agent": "gpumod"})
    if token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            info = json.loads(resp.read().decode())
    except urllib.error.HTTPError as err:
        raise GpumodError(
            f"the hub at {endpoint} answered {err.code} for {source.repo}@{source.revision or 'main'}",
            hint="check the model id (and HF_TOKEN for a gated repo); HF_ENDPOINT sets another hub",
        ) from None
    except (OSError, ValueError) as err:
        raise GpumodError(
            f"cannot list {source.repo} on the hub at {endpoint}: {err}",
            hint="is the hub reachable from here? HF_ENDPOINT sets another hub (a mirror)",
        ) from None
    return [(str(s["rfilename"]), int(s.get("size") or 0)) for s in info.get("siblings") or []]


@dataclass(frozen=True)
class Download:
    service: str
    source: ModelSource
    fetch_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class PodProvision:
    """What one pod needs before its starts: setup steps (with their commands) and downloads."""

    pod: str
    facts: SetupFacts
    setup: tuple[SetupStep, ...] = ()
    downloads: tuple[Download, ...] = ()

    def steps(self) -> tuple[Step, ...]:
        out = [Step(self.pod, "setup", s.action, s.reason, "provision", 0, detail=s.title) for s in self.setup]
        for d in self.downloads:
            what = f"{d.source.repo}" + (f"@{d.source.revision}" if d.source.revision else "")
            cached = d.total_bytes - d.fetch_bytes
            reason = "not in the pod's model cache" + (f" ({human_bytes(cached)} already there)" if cached else "")
            out.append(Step(self.pod, "download", d.service, reason, "provision", 0,
                            detail=f"{what} ({human_bytes(d.fetch_bytes)})"))
        return tuple(out)


@dataclass(frozen=True)
class Provision:
    pods: tuple[PodProvision, ...] = ()

    def pod(self, name: str) -> PodProvision | None:
        return next((p for p in self.pods if p.pod == name), None)

    def merged(self, plan: Plan) -> Plan:
        """The plan with each pod's provisioning steps first."""
        pods = []
        for pod_plan in plan.pods:
            mine = self.pod(pod_plan.pod)
            pods.append(replace(pod_plan, steps=mine.steps() + pod_plan.steps) if mine else pod_plan)
        return replace(plan, pods=tuple(pods))


def _cached(facts: SetupFacts, source: ModelSource) -> bool:
    """Complete without asking the hub: a branch or tag whose ref the downloader wrote at the end.
    A commit hash has no ref (its snapshot folder exists from the start): the file list decides."""
    if re.fullmatch(r"[0-9a-f]{40}", source.revision or ""):
        return False
    repo = facts.cached_repo(source.repo)
    return repo is not None and repo.snapshot(source.revision) is not None


async def plan_provision(
    pods: Sequence[PodSpec],
    desired: Sequence[DesiredPod],
    observed: Sequence[ObservedPod],
    *,
    state_dirs: Mapping[str, str],
) -> Provision:
    """The provisioning of each reachable pod with ``setup:``; SetupRefusedError (every reason,
    every pod) when any pod cannot be set up or a download does not fit its disk."""
    obs = {o.name: o for o in observed}
    want = {d.name: d for d in desired}
    endpoint, token = hub_endpoint(), os.environ.get("HF_TOKEN") or None
    refusals: list[str] = []
    out = []
    for pod in pods:
        o = obs.get(pod.name)
        if pod.setup is None or o is None or not o.reachable or not isinstance(o.setup, SetupFacts):
            continue
        facts: SetupFacts = o.setup
        reasons = setup_refusals(pod.setup, facts)
        if reasons:
            refusals += [f"pod {pod.name}: {r}" for r in reasons]
            continue
        steps = setup_steps(pod.setup, facts, python=pod.python, pod=pod.name,
                            tools_dir=tools_dir(state_dirs.get(pod.name, "~/.gpumod")))
        downloads: list[Download] = []
        free = facts.free_bytes
        seen: set[tuple[str, str | None]] = set()
        d = want.get(pod.name)
        for svc in d.services if d else ():
            source = model_source(svc.spec.driver, svc.spec.model)
            if source is None or (source.repo, source.revision) in seen or _cached(facts, source):
                continue
            seen.add((source.repo, source.revision))
            files = await asyncio.to_thread(hub_files, source, endpoint, token)
            need = download_need(source.repo, files, replace(facts, free_bytes=free), revision=source.revision)
            if need.cached:
                continue
            if not need.fits:
                refusals.append(f"pod {pod.name}: service {svc.name}: {need.refusal()}")
                continue
            if free is not None:
                free -= need.fetch_bytes
            downloads.append(Download(svc.name, source, need.fetch_bytes, need.total_bytes))
        out.append(PodProvision(pod.name, facts, tuple(steps), tuple(downloads)))
    if refusals:
        raise SetupRefusedError(refusals)
    return Provision(tuple(out))


# ---------------------------------------------------------------- executing


Report = Callable[[str, Any], None]  # ("start", Step) | ("done", StepOutcome) | ("progress", (Step, DownloadEvent))


async def _run_process(
    transport: Any, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: bytes = b"",
    on_line: Callable[[str], None] | None = None,
) -> tuple[int | None, str]:
    """Run ARGV on the pod as a process; each stdout line to ``on_line``; (exit code, stderr tail).
    Cancelled (Ctrl+C): the remote process group is killed before the cancellation goes on."""
    process = await transport.open_process(list(argv), env=dict(env or {}))
    stderr_task = asyncio.ensure_future(process.read_stderr())
    try:
        if stdin:
            process.write(stdin)
        while True:
            line = await process.readline()
            if not line:
                break
            if on_line is not None:
                on_line(line.rstrip("\n"))
        err = await stderr_task
        await process.close()
    except BaseException:
        stderr_task.cancel()
        await asyncio.shield(process.close(grace_s=0.0))
        raise
    tail = "\n".join(err.decode("utf-8", "replace").strip().splitlines()[-6:])
    return process.returncode, tail


async def _setup(transport: Any, step: SetupStep) -> None:
    for argv in step.commands:
        code, tail = await _run_process(transport, argv, env=dict(step.env))
        if code != 0:
            raise GpumodError(f"{step.title}: `{argv[0]}` exited {code}: {tail or 'no output'}")


async def _download(
    transport: Any, facts: SetupFacts, d: Download, progress: Callable[[DownloadEvent], None]
) -> None:
    python = f"{facts.venv_path}/bin/python"
    argv = download_argv(python, d.source.repo, facts.hf_cache, revision=d.source.revision, endpoint=hub_endpoint())
    token = os.environ.get("HF_TOKEN") or ""
    last: dict[str, DownloadEvent] = {}

    def on_line(line: str) -> None:
        ev = parse_event(line)
        if ev is None:
            return
        if ev.kind == "done":  # the done line carries no byte counts: the whole repo is there
            total = last["start"].total if "start" in last else 0
            ev = replace(ev, done=total, total=total)
        last[ev.kind] = ev
        if ev.kind in ("start", "progress", "done"):
            progress(ev)

    code, tail = await _run_process(
        transport, ["sh", "-c", _TOKEN_SHIM, "sh", *argv], stdin=token.encode() + b"\n", on_line=on_line
    )
    if "error" in last:
        raise GpumodError(f"download {d.source.repo}: {last['error'].message}")
    if code != 0 or "done" not in last:
        raise GpumodError(f"download {d.source.repo}: the downloader exited {code}: {tail or 'no output'}")


def _progress(report: Report, step: Step, ev: DownloadEvent) -> None:
    report("progress", (step, ev))


async def run_provision(transport: Any, prov: PodProvision, steps: Sequence[Step], report: Report) -> list[StepOutcome]:
    """Run the pod's provisioning steps in order; the first failure skips the rest."""
    by_action = {s.action: s for s in prov.setup}
    by_service = {d.service: d for d in prov.downloads}
    outcomes: list[StepOutcome] = []
    failed = ""
    for step in steps:
        if failed:
            outcome = StepOutcome(step, "skipped", f"{failed} failed")
            outcomes.append(outcome)
            report("done", outcome)
            continue
        report("start", step)
        started = time.monotonic()
        try:
            if step.action == "setup":
                await _setup(transport, by_action[step.service])
            else:
                on_progress = functools.partial(_progress, report, step)
                await _download(transport, prov.facts, by_service[step.service], on_progress)
        except GpumodError as err:
            failed = step.detail
            outcome = StepOutcome(step, "failed", str(err), time.monotonic() - started)
        else:
            outcome = StepOutcome(step, "ok", "", time.monotonic() - started)
        outcomes.append(outcome)
        report("done", outcome)
    return outcomes

