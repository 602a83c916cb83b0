"""The CLI verbs that read or write the specs: ``mode``, ``service``, ``presets``, ``start``, ``stop``.

A face like ``gpumod.cli``, kept in its own module so each stays small: parse arguments, call
``gpumod.ops`` (``inventory`` to read, ``switch_mode`` to edit → commit → apply), render. Every
verb takes ``--specs DIR`` (default ``./specs``), as ``unlock`` does.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from pathlib import Path
from typing import Any, Callable, Coroutine, Optional

import typer
from rich.text import Text

from gpumod.cli import ConsoleReporter, Output, OutOpt, _confirm, _run, app, out
from gpumod.errors import GpumodError
from gpumod.ops import inventory
from gpumod.ops.switch_mode import SwitchResult, start_service, stop_service, switch_mode
from gpumod.views import render_recap, status_table

SpecsOpt = typer.Option(Path("specs"), "--specs", "-d", help="spec directory")
PodOne = typer.Option(None, "--pod", "-p", help="the pod (may be left out when the specs define one)")
YesOpt = typer.Option(False, "--yes", "-y", help="do not ask for confirmation")
NoApplyOpt = typer.Option(False, "--no-apply", help="only edit the specs; do not apply")

mode_app = typer.Typer(help="Modes: list them, see which one each pod runs, switch a pod's mode.", no_args_is_help=True)
service_app = typer.Typer(help="Services: list them and see their state.", no_args_is_help=True)
model_app = typer.Typer(help="Models: what the presets, the specs, the pods' caches and the hub say of one.",
                        no_args_is_help=True)
app.add_typer(mode_app, name="mode")
app.add_typer(service_app, name="service")
app.add_typer(model_app, name="model")


def _json(data: Any) -> None:
    out.print_json(json.dumps(data))


def _need(specs: Path) -> None:
    if not specs.exists():
        raise GpumodError(f"no spec directory {specs} here", hint="pass the spec directory with --specs DIR")


@mode_app.command("list")
def mode_list(specs: Path = SpecsOpt, output: Output = OutOpt) -> None:
    """The modes the specs define, their services, and the pods running each."""

    def body() -> int:
        _need(specs)
        modes = inventory.mode_list(specs)
        if output is Output.json:
            _json({"modes": [m.to_json() for m in modes]})
            return 0
        for m in modes:
            pods = f"  [pods: {', '.join(m.pods)}]" if m.pods else ""
            out.print(f"{m.name}: {', '.join(m.services) or '(no services)'}{pods}")
            if m.description:
                out.print(Text(f"  {m.description}", style="dim"))
        return 0

    _run(body, json_output=output is Output.json)


@mode_app.command("status")
def mode_status(
    specs: Path = SpecsOpt, pod: Optional[list[str]] = typer.Option(None, "--pod", "-p"), output: Output = OutOpt
) -> None:
    """Each pod's mode and its services' state (what `gpumod status` shows)."""
    from gpumod.ops.status import status

    def body() -> int:
        _need(specs)
        result = asyncio.run(status(specs, pod))
        if output is Output.json:
            _json(result.to_json())
        else:
            for renderable in status_table(result):
                out.print(renderable)
        return 0

    _run(body, json_output=output is Output.json)


def _edit(
    verb: Callable[..., Coroutine[Any, Any, SwitchResult]], no_apply: bool, yes: bool, output: Output
) -> int:
    """Run a spec-editing verb with the CLI's apply, confirmation and progress options; print it."""
    quiet = output is Output.json
    result = asyncio.run(
        verb(apply_after=not no_apply, confirm=_confirm(yes or quiet), reporter=ConsoleReporter(out, quiet=quiet))
    )
    return _print_switch(result, quiet)


def _print_switch(result: SwitchResult, as_json: bool) -> int:
    if as_json:
        _json(result.to_json())
        return result.exit_code
    e = result.edit
    out.print(e.summary)
    for hunk in e.hunks:
        out.print(str(hunk))
    if e.shared_with:
        out.print(Text(f"  also changes pods running the same mode: {', '.join(e.shared_with)}", style="yellow"))
    if result.commit:
        out.print(f"committed {result.commit[:12]}")
    if result.applied is not None:
        for line in render_recap(result.applied):
            out.print(line)
    return result.exit_code


@mode_app.command("switch")
def mode_switch(
    mode: str = typer.Argument(..., help="the mode to switch to"),
    pod: Optional[str] = PodOne,
    commit: bool = typer.Option(
        False, "--commit", help="git commit the edited spec (refused with uncommitted changes)"
    ),
    no_apply: bool = NoApplyOpt,
    yes: bool = YesOpt,
    specs: Path = SpecsOpt,
    output: Output = OutOpt,
) -> None:
    """Set the pod's `mode:` in its spec (only that line changes), optionally commit, then apply."""

    def body() -> int:
        _need(specs)
        return _edit(lambda **o: switch_mode(specs, mode, pod, commit=commit, **o), no_apply, yes, output)

    _run(body, json_output=output is Output.json)


@service_app.command("list")
def service_list(specs: Path = SpecsOpt, output: Output = OutOpt) -> None:
    """The services the specs define: preset, port, the modes that list them."""

    def body() -> int:
        _need(specs)
        services = inventory.service_list(specs)
        if output is Output.json:
            _json({"services": [s.to_json() for s in services]})
            return 0
        for s in services:
            out.print(
                f"{s.name}: preset {s.preset or '-'}, port {s.port or '-'}, modes {', '.join(s.modes) or '-'}"
            )
        return 0

    _run(body, json_output=output is Output.json)


@service_app.command("status")
def service_status(
    name: Optional[str] = typer.Argument(None, help="one service (default: all)"),
    specs: Path = SpecsOpt,
    pod: Optional[list[str]] = typer.Option(None, "--pod", "-p"),
    output: Output = OutOpt,
) -> None:
    """A service's state on each pod: state, target, GPU, VRAM used/budget, port, note."""

    def body() -> int:
        _need(specs)
        _, rows = asyncio.run(inventory.service_status(specs, name, pod))
        if output is Output.json:
            _json(inventory.rows_to_json(rows))
            return 0
        for p, r in rows:
            line = f"{p}/{r.service}: {r.state} (target {r.target}), VRAM {r.vram_text}, port {r.port or '-'}"
            out.print(line + (f" — {r.note}" if r.note else ""))
        return 0

    _run(body, json_output=output is Output.json)


@app.command()
def presets(pod: Optional[str] = PodOne, specs: Path = SpecsOpt, output: Output = OutOpt) -> None:
    """Known presets, and whether each has a config for the pod's GPUs (fits / possibly works / no config)."""

    def body() -> int:
        result = inventory.presets(specs, pod)
        if output is Output.json:
            _json(result.to_json())
            return 0
        if result.pod:
            out.print(f"pod {result.pod}: {', '.join(result.gpus)}")
        width = max((len(p.name) for p in result.presets), default=10)
        for p in result.presets:
            out.print(f"  {p.name:<{width}}  {p.role or '-':<10} {p.verdict}".rstrip())
        return 0

    _run(body, json_output=output is Output.json)


@model_app.command("info")
def model_info(
    model: str = typer.Argument(..., help="a Hugging Face repo id (org/name[@revision]), a preset or a service"),
    specs: Path = SpecsOpt,
    pod: Optional[list[str]] = typer.Option(None, "--pod", "-p", help="only these pods' caches (repeatable)"),
    hub: bool = typer.Option(True, "--hub/--no-hub", help="ask the hub (HF_ENDPOINT) for sizes and config.json"),
    output: Output = OutOpt,
) -> None:
    """Presets and services that serve MODEL, whether each pod has it cached, and from the hub its
    weights size and KV cache per 1,000 tokens (the weights_mb / kv_mb_per_1k a Service can declare)."""
    from gpumod.drivers.provision import human_bytes
    from gpumod.ops.model_info import model_info as info_of

    def body() -> int:
        _need(specs)
        found = asyncio.run(info_of(specs, model, pod, hub=hub))
        if output is Output.json:
            _json(found.to_json())
            return 0
        say = lambda line: out.print(line, markup=False)  # noqa: E731  (nothing here is markup)
        say(f"model {found.model}" + (f"@{found.revision}" if found.revision else ""))
        for p in found.presets:
            configs = "; ".join(f"{g}: {v} MiB" if v else g for g, v in p.configs)
            say(f"  preset {p.name} ({p.role or '-'}, {p.driver}): {p.sizing}"
                + (f"; configs {configs}" if configs else ""))
        for s in found.services:
            say(f"  service {s.name}" + (f" (preset {s.preset})" if s.preset else "")
                + f": modes {', '.join(s.modes) or '-'}, runs on {', '.join(s.pods) or 'no pod now'}"
                + (f"; {s.awake_mb} MiB awake on {s.gpu}" if s.awake_mb is not None else ""))
        if not found.presets and not found.services:
            say("  no preset or service of the specs serves it")
        for c in found.pods:
            if c.error:
                say(f"  pod {c.pod}: unreachable: {c.error}")
            elif c.cached_bytes:
                say(f"  pod {c.pod}: cached, {human_bytes(c.cached_bytes)}" + ("" if c.complete else " (partial)"))
            else:
                say(f"  pod {c.pod}: not in its model cache")
        h = found.hub
        if h is not None and h.error and not h.files:
            say(f"  hub: {h.error}")
        elif h is not None:
            say(f"  hub {h.endpoint}: {h.files} files, {human_bytes(h.total_bytes)}; "
                f"weights {human_bytes(h.weights_bytes)} ({h.weights_mb} MiB)")
            if h.kv_mb_per_1k is not None:
                say(f"    KV cache {h.kv_mb_per_1k} MiB per 1,000 tokens; in a Service: "
                    f"weights_mb: {h.weights_mb}, kv_mb_per_1k: {h.kv_mb_per_1k}, context: <tokens>")
            elif h.error:
                say(f"    {h.error}")
        return 0

    _run(body)


@app.command()
def start(
    preset_or_model: str = typer.Argument(..., help="a known preset, or a model id"),
    name: str = typer.Option(..., "--name", "-n", help="the new service's name"),
    pod: Optional[str] = PodOne,
    gpus: Optional[int] = typer.Option(None, "--gpus", min=1, help="tensor parallel over N GPUs"),
    memory: Optional[float] = typer.Option(None, "--memory", help="gpu_memory_utilization (0-1]"),
    context: Optional[int] = typer.Option(None, "--context", min=1, help="context length"),
    no_apply: bool = NoApplyOpt,
    yes: bool = YesOpt,
    specs: Path = SpecsOpt,
    output: Output = OutOpt,
) -> None:
    """Write a Service document, add it to the pod's mode, then apply."""
    from gpumod.spec import PresetCatalog

    def body() -> int:
        _need(specs)
        doc: dict[str, Any] = {"kind": "Service", "name": name}
        catalog = PresetCatalog.load()
        if preset_or_model in catalog:
            doc["preset"] = preset_or_model
        else:
            close = difflib.get_close_matches(preset_or_model, [p.name for p in catalog.presets], n=1, cutoff=0.8)
            if close and "/" not in preset_or_model:  # a mistyped preset, not a model id (org/name)
                raise GpumodError(
                    f"no preset named {preset_or_model!r}; did you mean {close[0]!r}?",
                    hint="`gpumod presets` lists them; a model id has the form org/name (Qwen/Qwen3-0.6B)",
                )
            doc["model"] = preset_or_model
        for key, value in (("gpus", gpus), ("gpu_memory_utilization", memory), ("context", context)):
            if value is not None:
                doc[key] = value
        return _edit(lambda **o: start_service(specs, doc, pod, **o), no_apply, yes, output)

    _run(body, json_output=output is Output.json)


@app.command()
def stop(
    name: str = typer.Argument(..., help="the service to take out of the pod's mode"),
    pod: Optional[str] = PodOne,
    no_apply: bool = NoApplyOpt,
    yes: bool = YesOpt,
    specs: Path = SpecsOpt,
    output: Output = OutOpt,
) -> None:
    """Remove a service from the pod's mode (its Service document stays), then apply."""

    def body() -> int:
        _need(specs)
        return _edit(lambda **o: stop_service(specs, name, pod, **o), no_apply, yes, output)

    _run(body, json_output=output is Output.json)
