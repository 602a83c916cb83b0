"""Verbs that write the specs: change a pod's mode or a mode's services by editing the YAML in place.

Git stays the truth (issue 8): a switch edits the spec a user keeps in git, then reconciles; there
is no private database of "the current mode". Users' files carry comments, an order and a layout
they chose, so an edit changes only the lines that must change (``gpumod.spec.yamltext``): the
value after ``mode:``, one ``- name`` line or the inside of ``[a, b]``, or a Service document
appended after ``---``. The loader says which file and line a document comes from
(``SpecSet.where``); each edit then reloads the specs and checks that they read back exactly as
asked, everything else unchanged. If not, the original bytes go back and ``EditRejectedError``
says why: a failed edit never leaves a half-written or invalid spec behind.

    set_pod_mode(spec_dir, pod, mode)                     -> SpecEdit   (mode line)
    add_service(spec_dir, pod, service_doc, file=None)    -> SpecEdit   (new document + member)
    add_to_mode(spec_dir, pod, name)                      -> SpecEdit   (member of an existing service)
    remove_service_from_mode(spec_dir, pod, name)         -> SpecEdit   (member; the document stays)

``pod`` may be None when the specs define exactly one pod. Every user error is a ``SpecEditError``
(a ``GpumodError``: print ``message`` and ``hint``, exit 2); no file is left changed then::

    SpecEditError          a refused request (e.g. a name that breaks the naming rule)
    ├── UnknownNameError   no such pod / mode / service, or several pods and none named
    ├── UnsafeEditError    an anchor, alias, merge key, tag or multi-line value at the place to edit
    └── EditRejectedError  the edited specs were invalid (its ``problems``) or read back wrong: restored

How the faces use it (the CLI's ``gpumod mode switch``, ``start``, ``stop``; the MCP server's
``gpu_mode_switch``; the TUI's ``/switch``), through the operations layer::

    if commit_wanted and gpumod.gitcommit.uncommitted(specs_dir):   # the user's own changes would ride along
        refuse(...)
    edit = set_pod_mode(specs_dir, pod, mode)            # SpecEditError / SpecError: one red line + hint
    for hunk in edit.hunks:                              # show what changed (nothing when edit.changed is False)
        print(hunk)
    if commit_wanted and edit.changed:                   # --commit
        gpumod.gitcommit.commit(specs_dir, edit.paths, edit.summary)
    apply(...)                                           # unless --no-apply

``edit.shared_with`` names other pods running the same mode: a face should say that they change too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpumod.spec import yamltext
from gpumod.spec.checks import _Checker
from gpumod.spec.loader import SUFFIXES, SpecSet, display_path, load_specs
from gpumod.spec.models import NAME_RE, NAME_RULE, ModeMember, ModeSpec, PodSpec, ServiceSpec
from gpumod.spec.presets import PresetCatalog
from gpumod.spec.source import parse_yaml, validate
from gpumod.spec.specfiles import EditRejectedError, Hunk, SpecFiles
from gpumod.spec.yamltext import SpecEditError, UnsafeEditError

__all__ = [
    "EditRejectedError",
    "Hunk",
    "SpecEdit",
    "SpecEditError",
    "UnknownNameError",
    "UnsafeEditError",
    "add_service",
    "add_to_mode",
    "pick_pod",
    "remove_service_from_mode",
    "set_pod_mode",
]


class UnknownNameError(SpecEditError):
    """A pod, mode or service named in the request does not exist (or the pod is ambiguous)."""


@dataclass(frozen=True)
class SpecEdit:
    """What an edit did: a one-line summary (also the commit message) and the changed lines."""

    summary: str
    pod: str
    mode: str  # the pod's mode after the edit
    hunks: tuple[Hunk, ...] = ()
    previous_mode: str | None = None  # set_pod_mode: the mode before
    service: str | None = None  # add_service, add_to_mode, remove_service_from_mode: the member
    shared_with: tuple[str, ...] = ()  # other pods running the edited mode (they change too)

    @property
    def changed(self) -> bool:
        return bool(self.hunks)

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(h.path for h in self.hunks))


# --- the operations ------------------------------------------------------------------------------


def set_pod_mode(spec_dir: str | Path, pod: str | None, mode: str, *, catalog: PresetCatalog | None = None) -> SpecEdit:
    """Set the ``mode:`` of a Pod document; only that line changes (quotes and a trailing comment kept)."""
    specs = load_specs(spec_dir, catalog)
    pod_spec = pick_pod(specs, pod)
    _check_name(mode, "mode")
    if specs.mode(mode) is None:
        hint = _suggest(mode, specs.modes, "Mode")
        raise UnknownNameError(f"pod {pod_spec.name}: mode '{mode}' is not defined; {hint}")
    if pod_spec.mode == mode:
        return SpecEdit(f"pod {pod_spec.name}: already in mode {mode}", pod_spec.name, mode, previous_mode=mode)
    files = SpecFiles()
    path, text, doc = files.document(specs, "Pod", pod_spec.name)
    found = yamltext.value_of(doc.node, "mode")
    what = f"{path}:{doc.line_of('mode')}: the mode of pod {pod_spec.name}"
    if found is None:
        raise UnsafeEditError(f"{what} comes from a YAML merge key (<<); gpumod will not rewrite it")
    yamltext.refuse_shared(doc.node, found[1], doc.shared, what)
    files.put(path, yamltext.replace_scalar(text, found[1], mode, what))
    pods = tuple(p.model_copy(update={"mode": mode}) if p.name == pod_spec.name else p for p in specs.pods)
    summary = f"pod {pod_spec.name}: mode {pod_spec.mode} -> {mode}"
    hunks = files.commit(spec_dir, catalog, dataclasses.replace(specs, pods=pods), summary)
    return SpecEdit(summary, pod_spec.name, mode, hunks, pod_spec.mode, shared_with=_sharing(specs, pod_spec))


def add_service(
    spec_dir: str | Path,
    pod: str | None,
    service_doc: Mapping[str, Any],
    file: str | Path | None = None,
    *,
    catalog: PresetCatalog | None = None,
) -> SpecEdit:
    """Append a ``kind: Service`` document and add its name to the services of the pod's mode.

    The document goes to ``file`` (relative to ``spec_dir``; created if missing, in a folder that
    exists) or else to the file that already holds the most services.
    """
    specs = load_specs(spec_dir, catalog)
    pod_spec = pick_pod(specs, pod)
    service, rendered = _new_service(specs, _bare_model_defaults(specs, catalog, service_doc))
    files = SpecFiles()
    mode = _member_edit(specs, files, pod_spec, service.name, add=True)
    target = _service_file(spec_dir, specs, file)
    files.put(target, yamltext.append_document(files.text(target), rendered))
    services = tuple(sorted((*specs.services, service), key=lambda s: s.name))
    expected = dataclasses.replace(specs, services=services, modes=_replaced(specs.modes, mode))
    return _member_result(spec_dir, catalog, files, specs, pod_spec, expected, service.name, "add", "to")


def add_to_mode(spec_dir: str | Path, pod: str | None, name: str, *, catalog: PresetCatalog | None = None) -> SpecEdit:
    """Add an existing service to the services of the pod's mode (nothing to do if it is a member)."""
    specs = load_specs(spec_dir, catalog)
    pod_spec = pick_pod(specs, pod)
    _check_name(name, "service")
    if specs.service(name) is None:
        raise UnknownNameError(f"service '{name}' is not defined; {_suggest(name, specs.services, 'Service')}")
    if name in {m.name for m in _mode_of(specs, pod_spec).members()}:
        summary = f"pod {pod_spec.name}: service {name} is already in mode {pod_spec.mode}"
        return SpecEdit(summary, pod_spec.name, pod_spec.mode, service=name)
    files = SpecFiles()
    mode = _member_edit(specs, files, pod_spec, name, add=True)
    expected = dataclasses.replace(specs, modes=_replaced(specs.modes, mode))
    return _member_result(spec_dir, catalog, files, specs, pod_spec, expected, name, "add", "to")


def remove_service_from_mode(
    spec_dir: str | Path, pod: str | None, name: str, *, catalog: PresetCatalog | None = None
) -> SpecEdit:
    """Remove a service from the services of the pod's mode; its Service document stays."""
    specs = load_specs(spec_dir, catalog)
    pod_spec = pick_pod(specs, pod)
    _check_name(name, "service")
    files = SpecFiles()
    mode = _member_edit(specs, files, pod_spec, name, add=False)
    expected = dataclasses.replace(specs, modes=_replaced(specs.modes, mode))
    return _member_result(spec_dir, catalog, files, specs, pod_spec, expected, name, "remove", "from")


def _member_result(
    spec_dir: str | Path,
    catalog: PresetCatalog | None,
    files: SpecFiles,
    specs: SpecSet,
    pod: PodSpec,
    expected: SpecSet,
    service: str,
    verb: str,
    preposition: str,
) -> SpecEdit:
    summary = f"pod {pod.name}: {verb} service {service} {preposition} mode {pod.mode}"
    hunks = files.commit(spec_dir, catalog, expected, summary)
    return SpecEdit(summary, pod.name, pod.mode, hunks, service=service, shared_with=_sharing(specs, pod))


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no types: its classes are Any
    """Safe YAML, with multi-line strings as ``|`` blocks (as a person would write them)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # the emitter falls back to quotes when a block cannot hold it
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


# --- finding what to edit ------------------------------------------------------------------------


def _suggest(name: str, defined: Iterable[Any], kind: str) -> str:
    return _Checker._suggest(name, defined, kind)  # the loader's did-you-mean, one wording for both


def _check_name(name: object, kind: str) -> None:
    """Refuse a name the spec models would refuse, in the loader's words (one rule, one wording)."""
    if isinstance(name, str) and NAME_RE.match(name):
        return
    if not isinstance(name, str):
        raise SpecEditError(f"a {kind} name is a string, got {type(name).__name__} {name!r}")
    raise SpecEditError(f"{kind} {name!r} is not a valid name; {NAME_RULE}")


def pick_pod(specs: SpecSet, name: str | None) -> PodSpec:
    """The pod named, or the only pod when no name is given (an error names the choices)."""
    if name is None:
        if len(specs.pods) == 1:
            return specs.pods[0]
        if not specs.pods:
            raise UnknownNameError("the specs define no pod; add a document with kind: Pod")
        names = ", ".join(p.name for p in specs.pods)
        raise UnknownNameError(f"the specs define {len(specs.pods)} pods ({names}); say which one with --pod")
    _check_name(name, "pod")
    pod = specs.pod(name)
    if pod is None:
        raise UnknownNameError(f"pod '{name}' is not defined; {_suggest(name, specs.pods, 'Pod')}")
    return pod


def _mode_of(specs: SpecSet, pod: PodSpec) -> ModeSpec:
    mode = specs.mode(pod.mode)
    assert mode is not None, "load_specs checks that every pod's mode is defined"
    return mode


def _sharing(specs: SpecSet, pod: PodSpec) -> tuple[str, ...]:
    return tuple(p.name for p in specs.pods if p.mode == pod.mode and p.name != pod.name)


def _replaced(modes: tuple[ModeSpec, ...], mode: ModeSpec) -> tuple[ModeSpec, ...]:
    return tuple(mode if m.name == mode.name else m for m in modes)


def _member_edit(specs: SpecSet, files: SpecFiles, pod: PodSpec, name: str, *, add: bool) -> ModeSpec:
    """Add ``name`` to (or remove it from) the services of the pod's mode in ``files``; the mode as it will read."""
    mode = _mode_of(specs, pod)
    path, text, doc = files.document(specs, "Mode", mode.name)
    what = f"{path}:{doc.line_of('services')}: the services of mode {mode.name}"
    found = yamltext.value_of(doc.node, "services")
    if found is None and yamltext.has_merge_key(doc.node):
        raise UnsafeEditError(f"{what} come from a YAML merge key (<<); gpumod will not rewrite them")
    if found is not None:
        yamltext.refuse_shared(doc.node, found[1], doc.shared, what)
    if add:
        item = yamltext.render_name(name)
        if found is None:
            files.put(path, yamltext.add_key(text, doc.node, f"services: [{item}]", what))
        else:
            files.put(path, yamltext.append_item(text, found[1], item, what))
        return mode.model_copy(update={"services": [*mode.services, name]})
    names = [yamltext.member_name(n) for n in (found[1].value if found is not None else [])]
    if found is None or name not in names:
        have = ", ".join(m.name for m in mode.members()) or "none"
        raise UnknownNameError(f"service '{name}' is not in mode {mode.name} of pod {pod.name} (its services: {have})")
    index = names.index(name)
    files.put(path, yamltext.remove_item(text, found[0], found[1], index, what))
    kept = [m for m in mode.services if (m.name if isinstance(m, ModeMember) else m) != name]
    return mode.model_copy(update={"services": kept})


FIRST_PORT = 8000  # where a bare model's port search starts (vLLM's own default port)
VLLM_DEFAULT_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization when the flag is not given


def _bare_model_defaults(
    specs: SpecSet, catalog: PresetCatalog | None, service_doc: Mapping[str, Any]
) -> Mapping[str, Any]:
    """A model id without a preset (``gpumod start Qwen/Qwen3-0.6B --name q``) runs on vLLM, on a free port.

    Without these the new document would be refused for having no driver, no port and no VRAM
    footprint; like pi's ``start MODEL``, it gets ``driver: vllm``, the first port from 8000 up
    that no service of the specs uses (their own or their preset's), and vLLM's own default
    ``gpu_memory_utilization`` (0.9) unless ``--memory`` set one. Anything the caller set is kept.
    """
    if service_doc.get("preset") is not None or service_doc.get("model") is None:
        return service_doc
    model = str(service_doc["model"])
    if specs.service(model) is not None and "driver" not in service_doc:
        raise SpecEditError(  # `gpumod start hyde --name h2`: a service's name, not a model to serve
            f"{model} is a service of the specs ({specs.source('Service', model)}), not a preset or a model id",
            hint=f"to run it, add {model} to the services of the pod's mode; to start another model, "
            "give its repo id (org/name) or a preset",
        )
    doc = dict(service_doc)
    doc.setdefault("driver", "vllm")
    if doc["driver"] == "vllm" and doc.get("vram_mb") is None and doc.get("weights_mb") is None:
        doc.setdefault("gpu_memory_utilization", VLLM_DEFAULT_UTILIZATION)  # what vLLM takes without the flag
    if doc.get("port") is None:
        doc["port"] = _free_port(specs, catalog or PresetCatalog.load())
    return doc


def _free_port(specs: SpecSet, catalog: PresetCatalog) -> int:
    used: set[int] = set()
    for svc in specs.services:
        preset = catalog.get(svc.preset) if svc.preset is not None else None
        port = svc.port if svc.port is not None else (preset.port if preset is not None else None)
        if port is not None:
            used.add(port)
    port = FIRST_PORT
    while port in used:
        port += 1
    return port


def _new_service(specs: SpecSet, service_doc: Mapping[str, Any]) -> tuple[ServiceSpec, str]:
    """The new Service and its YAML text, validated from that very text exactly as the loader would."""
    data = dict(service_doc)
    kind = data.pop("kind", "Service")
    if kind != "Service":
        raise SpecEditError(f"a new service has kind: Service, got kind: {kind!r}")
    name = data.pop("name", None)
    if name is None:
        raise SpecEditError("a new service needs a name")
    _check_name(name, "service")
    if specs.service(name) is not None:
        raise SpecEditError(
            f"service {name} is already defined at {specs.source('Service', name)}; "
            "pick another name, or add the existing service to the mode"
        )
    try:
        rendered = yaml.dump(
            {"kind": "Service", "name": name, **data}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000
        )
    except yaml.YAMLError as err:
        raise SpecEditError(f"the new service {name} holds a value YAML cannot write: {err}") from None
    docs, problems = parse_yaml(rendered, f"service {name}")
    service = None
    if len(docs) == 1 and not problems:
        service, problems = validate(ServiceSpec, docs[0])
    if service is None:
        raise SpecEditError(f"the new service {name} is not valid: " + "; ".join(p.message for p in problems))
    return service, rendered


def _service_file(spec_dir: str | Path, specs: SpecSet, file: str | Path | None) -> Path:
    """Where a new Service document goes: ``file`` (inside the spec dir), else the file with the most services."""
    root = Path(spec_dir)
    if root.is_file():
        if file is not None and Path(file).resolve() != root.resolve():
            raise SpecEditError(f"the specs are the single file {root}; a new service goes into it")
        return root
    if file is not None:
        target = Path(file) if Path(file).is_absolute() else root / file
        try:
            relative = target.resolve().relative_to(root.resolve())
        except ValueError:
            raise SpecEditError(f"{file} is outside the spec directory {root}; name a file inside it") from None
        if not target.name.endswith(SUFFIXES) or any(part.startswith(".") for part in relative.parts):
            message = f"{file}: a spec file ends in .yaml or .yml and is not hidden; gpumod would not read it"
            raise SpecEditError(message)
        if not target.parent.is_dir():
            raise SpecEditError(f"{file}: the folder {target.parent} does not exist; create it first")
        return Path(display_path(target))
    counts: dict[str, int] = {}
    for svc in specs.services:
        path, _ = specs.where("Service", svc.name)
        counts[path] = counts.get(path, 0) + 1
    if not counts:
        mode = next(iter(specs.modes), None)
        if mode is None:
            raise SpecEditError(f"{root} defines no services and no modes; name the file for the new service")
        return Path(specs.where("Mode", mode.name)[0])
    return Path(min(counts, key=lambda p: (-counts[p], p)))
