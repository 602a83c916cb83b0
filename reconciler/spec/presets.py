"""Known-model presets and how a Service is resolved against them.

Presets are YAML data shipped in the ``gpumod.presets`` package (read with importlib.resources,
so they work from a wheel). A preset is a partial service plus optional per-GPU configs, as in
pi's known models. ``resolve_service`` merges preset ← the config for the pod's GPUs ← the
service's own fields. Unlike pi there is no silent fallback: a preset with configs and none for
these GPUs is an error that lists the configs it has.

Two vLLM flags have fields of their own (``gpu-memory-utilization`` → ``gpu_memory_utilization``,
``max-model-len`` → ``context``): when a preset or service gives them as args they are lifted into
the field, so the footprint sees them and a service can override them without leaving a stale
flag behind (pi's orphan-value bug).

Environment: preset ← its config ← the pod's ``env`` ← the service's ``env``. Secret references
stay references: ``ResolvedService.env`` gets the plain values, ``ResolvedService.secrets`` the
``(KEY, "env:NAME" | "file:PATH")`` references.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Literal, NamedTuple

from gpumod.errors import Problem, SpecError
from gpumod.spec.models import Health, PresetConfig, PresetSpec, SecretRef, ServiceFields, ServiceSpec
from gpumod.spec.resolved import ResolvedService
from gpumod.spec.source import parse_yaml, validate

PRESET_PACKAGE = "gpumod.presets"
FIELD_NAMES: tuple[str, ...] = tuple(ServiceFields.model_fields)
# where a service's api_key goes: the variable its server reads (never a flag: argv is public)
API_KEY_ENV: dict[str, str] = {"vllm": "VLLM_API_KEY", "llamacpp": "LLAMA_API_KEY"}
DEFAULT_API_KEY_ENV = "GPUMOD_API_KEY"  # command, fastapi, docker: the server reads it itself
LIFTED_ARGS: dict[str, str] = {"gpu-memory-utilization": "gpu_memory_utilization", "max-model-len": "context"}
DEFAULT_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PresetCatalog:
    """Every known preset, by name."""

    presets: tuple[PresetSpec, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)  # name -> "file:line"

    @classmethod
    def load(cls) -> PresetCatalog:
        """The presets shipped with gpumod (each file read at most once per process, when needed)."""
        return _packaged()

    @classmethod
    def from_texts(cls, files: Iterable[tuple[str, str]]) -> PresetCatalog:
        """A catalog from ``(path, yaml text)`` pairs, one preset per file; SpecError lists every problem."""
        problems: list[Problem] = []
        found: dict[str, tuple[PresetSpec, str]] = {}
        for path, text in sorted(files):
            docs, bad = parse_yaml(text, path)
            problems.extend(bad)
            if len(docs) != 1:
                if not bad:
                    problems.append(Problem(path, 1, f"a preset file holds exactly one preset, found {len(docs)}"))
                continue
            doc = docs[0]
            if not isinstance(doc.data, dict):
                problems.append(Problem(path, doc.line, "a preset is a mapping with name, driver, model ..."))
                continue
            preset, bad = validate(PresetSpec, doc)
            problems.extend(bad)
            if preset is None:
                continue
            if preset.name in found:
                first = found[preset.name][1]
                message = f"preset '{preset.name}' is also defined at {first}"
                problems.append(Problem(path, doc.line_of("name"), message))
                continue
            found[preset.name] = (preset, f"{path}:{doc.line_of('name')}")
        if problems:
            raise SpecError(problems)
        names = sorted(found)
        return cls(tuple(found[n][0] for n in names), {n: found[n][1] for n in names})

    def get(self, name: str) -> PresetSpec | None:
        return next((p for p in self.presets if p.name == name), None)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.presets)

    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.presets)

    def by_role(self, role: str) -> tuple[PresetSpec, ...]:
        return tuple(p for p in self.presets if p.role == role)

    def close_matches(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)


class _PackagedCatalog(PresetCatalog):
    """The presets shipped in gpumod.presets, each file parsed when its preset is first asked for.

    Why: a ``plan`` names a few presets; parsing and validating all of them cost more than the
    rest of the spec loading (issue 7, P7). A packaged preset file is named after its preset
    (``<name>.yaml``, checked by tests/spec/test_presets.py), so ``get(name)`` reads that one
    file; a file whose preset has another name, a name two files share, or an unknown name reads
    the whole tree (``from_texts``, with all its checks), as does everything that needs every
    preset (``presets``, ``names()``, ``by_role`` ...). Answers are those of the full catalog.
    """

    _files: tuple[tuple[str, Traversable], ...]  # (path, file): the whole tree
    _by_name: dict[str, tuple[str, Traversable]]  # preset name -> (path, file), for names of one file only
    _one: dict[str, PresetCatalog]  # name -> the catalog of its file alone

    def __init__(self, files: Sequence[tuple[str, Traversable]]) -> None:
        # not the dataclass __init__: ``presets`` and ``sources`` are properties here
        stems = [f.name.rsplit(".", 1)[0] for _, f in files]
        by_name = {stem: pf for stem, pf in zip(stems, files) if stems.count(stem) == 1}
        object.__setattr__(self, "_files", tuple(files))
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_one", {})

    @functools.cached_property
    def _all(self) -> PresetCatalog:
        return PresetCatalog.from_texts((path, f.read_text(encoding="utf-8")) for path, f in self._files)

    @property
    def presets(self) -> tuple[PresetSpec, ...]:
        return self._all.presets

    @property
    def sources(self) -> Mapping[str, str]:
        return self._all.sources

    def get(self, name: str) -> PresetSpec | None:
        if "_all" in self.__dict__ or name not in self._by_name:
            return self._all.get(name)
        one = self._one.get(name)
        if one is None:
            path, f = self._by_name[name]
            one = self._one[name] = PresetCatalog.from_texts([(path, f.read_text(encoding="utf-8"))])
        preset = one.get(name)
        return preset if preset is not None else self._all.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@functools.cache
def _packaged() -> PresetCatalog:
    return _PackagedCatalog(_walk(resources.files(PRESET_PACKAGE), "presets"))


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    """The preset files under ``folder``: (``prefix/...`` path, file), sorted."""
    out: list[tuple[str, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            out.extend(_walk(entry, f"{prefix}/{entry.name}"))
        elif entry.name.endswith((".yaml", ".yml")):
            out.append((f"{prefix}/{entry.name}", entry))
    return out


# --- resolution ------------------------------------------------------------------------------


def split_source(source: str) -> tuple[str, int]:
    """``"path:line"`` → ``(path, line)`` (line 0 when unknown)."""
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit():
        return path, int(line)
    return source, 0


def gpu_count_of(gpus: int | list[int] | None) -> int:
    if gpus is None:
        return 1
    return len(gpus) if isinstance(gpus, list) else gpus


def describe_config(config: PresetConfig) -> str:
    types_ = "/".join(config.gpu_types) if config.gpu_types else "any GPU"
    return f"{config.gpu_count} x {types_}"


def gpu_type_matches(config: PresetConfig, gpu_name: str) -> bool:
    """A config's type matches when it is a substring of the GPU's name, case-insensitive."""
    name = gpu_name.lower()
    return not config.gpu_types or any(t.lower() in name for t in config.gpu_types)


def pick_config(preset: PresetSpec, count: int, gpu_name: str | None, source: str) -> PresetConfig | None:
    """The first config for ``count`` GPUs of this type; None if the preset has no configs."""
    if not preset.configs:
        return None
    for config in preset.configs:
        if config.gpu_count == count and (gpu_name is None or gpu_type_matches(config, gpu_name)):
            return config
    what = f"{count} x {gpu_name}" if gpu_name else f"{count} GPU(s)"
    has = ", ".join(describe_config(c) for c in preset.configs)
    path, line = split_source(source)
    raise SpecError(
        [
            Problem(
                path,
                line,
                f"preset {preset.name} has no config for {what}; it has: {has}. "
                "Use GPUs it supports, set gpus to one of those counts, or pick another preset",
            )
        ]
    )


FitVerdict = Literal["fits", "possibly works", "no config"]


class PresetFit(NamedTuple):
    """One line of ``gpumod presets --pod P``."""

    name: str
    role: str
    verdict: FitVerdict


def preset_fit(catalog: PresetCatalog, gpus: Sequence[str]) -> list[PresetFit]:
    """Whether each preset has a config for a pod with these GPUs (their names, as nvidia-smi prints them).

    ``fits``: the preset needs no per-GPU config, or it has one for this GPU type with a count of
    GPUs of that type the pod has. ``possibly works`` (pi's wording): its configs are for other GPU
    types, but one needs a count the pod has; gpumod will not pick such a config by itself (no
    silent fallback), the service has to set its own flags. ``no config``: every config needs more
    GPUs than the pod has. Pass the declared GPUs of a pod, or the observed ones when it declares none.
    VRAM is not judged here: ``gpumod simulate`` does that for a whole mode.
    """
    out = []
    for preset in catalog.presets:
        verdict: FitVerdict = "no config"
        if not preset.configs:
            verdict = "fits"
        for config in preset.configs:
            if sum(gpu_type_matches(config, g) for g in gpus) >= config.gpu_count:
                verdict = "fits"
                break
            if config.gpu_count <= len(gpus):
                verdict = "possibly works"
        out.append(PresetFit(preset.name, preset.role or "", verdict))
    return out


def merged_fields(
    svc: ServiceSpec,
    catalog: PresetCatalog,
    *,
    gpu_name: str | None,
    source: str,
    pod_env: Mapping[str, str | SecretRef] | None = None,
) -> dict[str, Any]:
    """The service's fields after merging its preset, the preset's config and the pod's env (None = unset)."""
    preset = None
    if svc.preset is not None:
        preset = catalog.get(svc.preset)
        if preset is None:
            path, line = split_source(source)
            raise SpecError([Problem(path, line, unknown_preset_message(svc.preset, catalog))])
    fields: dict[str, Any] = {k: None for k in FIELD_NAMES}
    args: dict[str, Any] = {}
    env: dict[str, str | SecretRef] = {}
    if preset is not None:
        fields.update({k: getattr(preset, k) for k in FIELD_NAMES if getattr(preset, k) is not None})
        args.update(preset.args or {})
        env.update(preset.env or {})
        gpus = svc.gpus if svc.gpus is not None else preset.gpus
        config = pick_config(preset, gpu_count_of(gpus), gpu_name, source)
        if config is not None:
            args.update(config.args)
            env.update(config.env)
            if config.vram_mb is not None:
                fields["vram_mb"] = config.vram_mb
    _lift(args, fields)
    for key, value in (svc.args or {}).items():
        if value is None:
            args.pop(key, None)
            if _flag(key) in LIFTED_ARGS:
                fields[LIFTED_ARGS[_flag(key)]] = None
        else:
            args[key] = value
    _lift(args, fields)
    for key in FIELD_NAMES:
        value = getattr(svc, key)
        if value is not None and key not in ("args", "env", "health"):
            fields[key] = value
    fields["health"] = _merge_health(preset.health if preset else None, svc.health)
    env.update(pod_env or {})
    env.update(svc.env or {})
    fields["args"] = args
    fields["env"] = env
    return fields


def _flag(key: str) -> str:
    return key.lstrip("-").replace("_", "-")


def _lift(args: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in list(args):
        target = LIFTED_ARGS.get(_flag(key))
        if target is not None:
            fields[target] = args.pop(key)


def _merge_health(base: Health | None, own: Health | None) -> Health:
    if base is None:
        return own or Health()
    if own is None:
        return base
    return base.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})


def unknown_preset_message(name: str, catalog: PresetCatalog) -> str:
    close = catalog.close_matches(name)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see presets/ for the known ones"
    return f"unknown preset '{name}'; {hint}"


def resolve_service(
    svc: ServiceSpec,
    catalog: PresetCatalog,
    *,
    gpu_name: str | None,
    source: str,
    pod_env: Mapping[str, str | SecretRef] | None = None,
    pod_source: str = "",
    env_sources: Mapping[str, str] | None = None,
) -> ResolvedService:
    """The service with its preset and its pod's env merged in and every default filled; SpecError if it cannot run.

    ``pod_source`` is the ``path:line`` of the pod document (relative secret files start from its folder);
    ``env_sources`` the ``path:line`` of each env entry (``SpecSet.env_sources``): a secret's problems point there.
    """
    f = merged_fields(svc, catalog, gpu_name=gpu_name, source=source, pod_env=pod_env)
    path, line = split_source(source)
    problems = []
    if f["driver"] is None:
        problems.append(
            Problem(path, line, f"service {svc.name} has no driver; set driver: vllm, llamacpp, fastapi or command")
        )
    if f["port"] is None:
        problems.append(Problem(path, line, f"service {svc.name} has no port; set port: <1-65535>"))
    if problems:
        raise SpecError(problems)
    gpus = f["gpus"]
    health: Health = f["health"]
    env: dict[str, str | SecretRef] = f["env"]
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    secrets = {k: v.ref() for k, v in env.items() if isinstance(v, SecretRef)}
    from_pod = {k for k in secrets if k in (pod_env or {}) and k not in (svc.env or {})}
    origins = {k: (pod_source or source) if k in from_pod else source for k in secrets}
    origins.update({k: v for k, v in (env_sources or {}).items() if k in secrets})
    api_key: SecretRef | None = f["api_key"]
    env_name = API_KEY_ENV.get(f["driver"], DEFAULT_API_KEY_ENV)
    key_env: str | None = env_name
    if api_key is not None:
        secrets[env_name] = api_key.ref()
        origins[env_name] = source
    elif key_env not in secrets:  # the key may also be set by hand, as a secret env entry
        key_env = None
    return ResolvedService(
        name=svc.name,
        driver=f["driver"],
        port=f["port"],
        source=source,
        model=f["model"],
        model_path=f["model_path"],
        models_dir=f["models_dir"],
        vram_mb=f["vram_mb"],
        sleep_vram_mb=f["sleep_vram_mb"],
        weights_mb=f["weights_mb"],
        kv_mb_per_1k=f["kv_mb_per_1k"],
        gpu_memory_utilization=f["gpu_memory_utilization"],
        context=f["context"],
        sleep=f["sleep"] or "none",
        gpu_count=gpu_count_of(gpus),
        pinned_gpus=tuple(gpus) if isinstance(gpus, list) else None,
        health_path=health.path,
        startup_timeout_s=health.startup_timeout_s,
        args=tuple(sorted((k, _frozen(v)) for k, v in f["args"].items())),
        env=tuple(sorted(plain.items())),
        secrets=tuple(sorted(secrets.items())),
        secret_origins=tuple(sorted(origins.items())),
        command=tuple(f["command"]) if f["command"] is not None else None,
        cwd=f["cwd"],
        role=f["role"],
        stop_timeout_s=f["stop_timeout_s"] or DEFAULT_STOP_TIMEOUT_S,
        depends_on=tuple(svc.depends_on),
        drift=svc.drift,
        preset=svc.preset,
        description=f["description"] or "",
        image=f["image"],
        container_port=f["container_port"],
        ports=tuple(f["ports"] or ()),
        volumes=tuple(f["volumes"] or ()),
        network=f["network"],
        shm_size=f["shm_size"],
        expose=bool(f["expose"]),
        api_key_env=key_env,
    )


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
