"""Checks across spec documents: references, cycles, ports, GPUs, sleep levels, hosts.

The pydantic models check one document at a time; what only shows when documents meet (a mode
naming a service nobody defined, a ``depends_on`` cycle, two members on one port, a pinned GPU
the pod does not have) is checked here, with the Docker security controls (SEC-D7 no privileged
containers, SEC-D8 no host/macvlan networks, SEC-D9 no mounts of /, /etc or the Docker socket)
and plain-text values under secret-looking env keys. Every check adds problems at the line of the
key it is about and never stops early, so one ``gpumod validate`` run lists everything to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gpumod.errors import Problem, SpecError
from gpumod.spec.hosts import HOST_FORMS, parse_host
from gpumod.spec.models import DOCKER_NAME_RE, ModeSpec, PodSpec, SecretRef, ServiceSpec
from gpumod.spec.presets import (
    PresetCatalog,
    gpu_count_of,
    merged_fields,
    unknown_preset_message,
)

if TYPE_CHECKING:
    from gpumod.spec.loader import SpecSet

VLLM_SLEEPS = ("none", "l1", "l2")
LLAMACPP_SLEEPS = ("none", "router")
DOCKER_ONLY = ("image", "container_port", "ports", "volumes", "network", "shm_size")
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD")
NOT_SECRET_ENDINGS = ("FILE", "PATH", "DIR")
REFUSED_NETWORKS = {
    "host": "the container would share the pod's network stack",
    "macvlan": "it puts the container directly on the physical network",
    "ipvlan": "it puts the container directly on the physical network",
}
# SEC-D9: host paths never mounted, nor anything below them, nor any folder above them
PROTECTED_MOUNTS = (
    ("/etc", "/etc holds the host's configuration and credentials"),
    ("/run", "it holds runtime sockets such as the Docker socket, i.e. root on the pod"),
    ("/var/run", "it holds runtime sockets such as the Docker socket, i.e. root on the pod"),
    ("/proc", "it exposes the host kernel"),
    ("/sys", "it exposes the host kernel"),
    ("/dev", "it exposes the host's devices (GPUs come from --gpus)"),
    ("/boot", "it holds the host's kernel and boot loader"),
)


def _gpus(count: int) -> str:
    return "1 GPU (index 0)" if count == 1 else f"{count} GPUs (indices 0-{count - 1})"


def looks_secret(key: str) -> bool:
    """HF_TOKEN, OPENAI_API_KEY, DB_PASSWORD, APIKEY: yes; TOKENIZERS_PARALLELISM, HF_TOKEN_PATH: no."""
    parts = [p for p in key.upper().split("_") if p]
    if not parts or parts[-1] in NOT_SECRET_ENDINGS:
        return False
    return any(p.endswith(SECRET_WORDS) for p in parts)


def normalise_host_path(path: str) -> str:
    """``//etc/./x/../`` → ``/etc``: '//' collapsed, '.' and '..' applied, no trailing '/'."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def mount_risk(source: str) -> str | None:
    """Why a volume source may not be mounted (SEC-D9), or None when it may."""
    path = normalise_host_path(source)
    if path == "/":
        return "/ is the whole host"
    if path.endswith("/docker.sock") or path.endswith("/containerd.sock"):
        return "it is a container runtime socket, i.e. root on the pod"
    for root, reason in PROTECTED_MOUNTS:
        if path == root or path.startswith(root + "/"):
            return reason
        if root.startswith(path + "/"):
            return f"it contains {root}: {reason}"
    return None


def volume_problems(volume: str) -> list[str]:
    """What is wrong with one ``source:/target[:ro|rw]`` volume (empty when it may be mounted)."""
    parts = volume.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        return [f"volume {volume!r} is not 'source:/path/in/container[:ro]'; write host-path:/container/path"]
    source, target = parts[0], parts[1]
    problems = []
    if source.startswith("/"):
        risk = mount_risk(source)
        if risk:
            problems.append(
                f"volume source {source} is refused (SEC-D9): {risk}; mount only the folders the service needs"
            )
    elif not DOCKER_NAME_RE.match(source):
        problems.append(
            f"volume source {source!r} is neither an absolute path nor a volume name; "
            "write an absolute host path (~ is not expanded)"
        )
    if not target.startswith("/"):
        problems.append(f"volume target {target!r} is not an absolute path in the container")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        problems.append(f"volume {volume!r}: mode {parts[2]!r} is not ro or rw")
    return problems


# --- cross-document checks ---------------------------------------------------------------------


def duplicate_problems(entries: Iterable[tuple[str, str, str, int]]) -> list[Problem]:
    """``(kind, name, path, line)`` of every document → a problem at each place a name repeats."""
    places: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for kind, name, path, line in entries:
        places.setdefault((kind, name), []).append((path, line))
    problems = []
    for (kind, name), where in sorted(places.items()):
        if len(where) < 2:
            continue
        for i, (path, line) in enumerate(where):
            others = ", ".join(f"{p}:{n}" for j, (p, n) in enumerate(where) if j != i)
            problems.append(Problem(path, line, f"duplicate {kind} '{name}' (also at {others}); rename or remove one"))
    return problems


def check_specs(
    specs: SpecSet,
    catalog: PresetCatalog,
    *,
    broken: frozenset[tuple[str, str]] = frozenset(),
    partial: Mapping[tuple[str, str], frozenset[str]] | None = None,
) -> list[Problem]:
    """Every cross-document problem of a spec set (duplicates are found by the loader).

    ``broken`` names the ``(kind, name)`` documents that failed validation: they exist, so they
    are not reported again as undefined references. ``partial`` maps the documents that are only
    the valid part of an invalid one to their keys whose value is unknown: checks that read such
    a key stay silent (see ``gpumod.spec.partial``).
    """
    return _Checker(specs, catalog, broken, partial or {}).run()


class _Checker:
    def __init__(
        self,
        specs: SpecSet,
        catalog: PresetCatalog,
        broken: frozenset[tuple[str, str]],
        partial: Mapping[tuple[str, str], frozenset[str]],
    ) -> None:
        self.specs = specs
        self.catalog = catalog
        self.broken = broken
        self.partial = partial
        self.problems: list[Problem] = []
        self.services = {s.name: s for s in specs.services}
        self.fields: dict[str, dict[str, Any] | None] = {}

    def unknown(self, kind: str, name: str, *keys: str) -> bool:
        """Whether any of ``keys`` (or a service's preset) is unknown because its document is invalid."""
        gone = self.partial.get((kind, name), frozenset())
        return bool(gone.intersection(keys)) or (kind == "Service" and "preset" in gone)

    def add(self, kind: str, name: str, loc: tuple[Any, ...], message: str) -> None:
        path, line = self.specs.where(kind, name, *loc)
        self.problems.append(Problem(path, line, message))

    def run(self) -> list[Problem]:
        for svc in self.specs.services:
            self.fields[svc.name] = self._merge(svc)
        for pod in self.specs.pods:
            self._pod(pod)
        for mode in self.specs.modes:
            self._mode(mode)
        for svc in self.specs.services:
            self._service(svc)
        self._this_machines_ports()
        self._cycles()
        return sorted(set(self.problems))

    def _this_machines_ports(self) -> None:
        """Pods on this machine (``host: sim`` or ``local``) share its ports: two of them whose modes
        run services on the same port would fight over it, the second start failing."""
        taken: dict[int, tuple[str, str]] = {}  # port -> (pod, service)
        for pod in self.specs.pods:
            try:
                kind = parse_host(pod.host).kind
            except ValueError:
                continue
            mode = self.specs.mode(pod.mode)
            if kind not in ("sim", "local") or mode is None:
                continue
            ports: dict[int, str] = {}  # the first service on each port (two in one mode: reported by _mode)
            for member in mode.members():
                port = (self.fields.get(member.name) or {}).get("port")
                if port is not None:
                    ports.setdefault(port, member.name)
            for port, service in ports.items():
                other = taken.setdefault(port, (pod.name, service))
                if other[0] != pod.name:
                    self.add(
                        "Pod", pod.name, ("mode",),
                        f"pods {other[0]} and {pod.name} both run on this machine and both use port {port} "
                        f"({other[1]} in pod {other[0]}, {service} in pod {pod.name}); "
                        "give one of the services another port, or run one pod elsewhere",
                    )

    def _merge(self, svc: ServiceSpec) -> dict[str, Any] | None:
        """Preset merged in, GPU type not known yet (configs matched by count)."""
        if svc.preset is not None and svc.preset not in self.catalog:
            self.add("Service", svc.name, ("preset",), unknown_preset_message(svc.preset, self.catalog))
            return None
        try:
            source = self.specs.source("Service", svc.name, "preset")
            return merged_fields(svc, self.catalog, gpu_name=None, source=source)
        except SpecError as err:
            self.problems.extend(err.problems)
            return None

    def _pod(self, pod: PodSpec) -> None:
        host = None
        if not self.unknown("Pod", pod.name, "host"):
            try:
                host = parse_host(pod.host)
            except ValueError as err:
                message = str(err) if HOST_FORMS in str(err) else f"{err}; use {HOST_FORMS}"
                self.add("Pod", pod.name, ("host",), message)
        gpus_unknown = self.unknown("Pod", pod.name, "gpus")
        if host is not None and host.kind == "sim" and not pod.gpus and not gpus_unknown:
            self.add(
                "Pod", pod.name, ("host",),
                f"pod {pod.name} is simulated (host: sim) but declares no gpus; "
                "add gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]",
            )
        if pod.sim is not None and host is not None and host.kind == "local":
            self.add(
                "Pod", pod.name, ("sim",),
                f"sim settings apply to host: sim (or an SSH pod with simulated GPUs); remove sim: from pod {pod.name}",
            )
        if pod.sim is not None and host is not None and host.kind == "ssh" and not pod.gpus and not gpus_unknown:
            self.add(
                "Pod", pod.name, ("sim",),
                f"pod {pod.name} simulates its GPUs over SSH (sim:) but declares no gpus; add gpus: [...]",
            )
        self._env("Pod", pod.name, pod.env)
        if self.specs.mode(pod.mode) is None:
            if ("Mode", pod.mode) in self.broken:
                return
            hint = self._suggest(pod.mode, self.specs.modes, "Mode")
            self.add("Pod", pod.name, ("mode",), f"mode '{pod.mode}' is not defined; {hint}")
        else:
            self._pod_gpus(pod, self.specs.mode(pod.mode))  # type: ignore[arg-type]

    def _pod_gpus(self, pod: PodSpec, mode: ModeSpec) -> None:
        if not pod.gpus:
            return  # observed at plan time
        count = len(pod.gpus)
        gpu_name = max(pod.gpus, key=lambda g: g.memory_mb).name
        for member in mode.members():
            f = self.fields.get(member.name)
            svc = self.services.get(member.name)
            if not f or svc is None:
                continue
            if svc.preset is not None:
                try:  # now that the GPU type is known, the preset must have a config for it
                    merged_fields(
                        svc, self.catalog, gpu_name=gpu_name, source=self.specs.source("Service", svc.name, "preset")
                    )
                except SpecError as err:
                    self.problems.extend(err.problems)
            if f["gpus"] is None:
                continue
            gpus = f["gpus"]
            if isinstance(gpus, list):
                beyond = [g for g in gpus if g >= count]
                if beyond:
                    self.add(
                        "Service", member.name, ("gpus",),
                        f"service {member.name} pins GPU {', '.join(map(str, beyond))}, but pod {pod.name} "
                        f"has {_gpus(count)}; pin GPUs the pod has",
                    )
            elif gpus > count:
                self.add(
                    "Service", member.name, ("gpus",),
                    f"service {member.name} needs {gpus} GPUs, but pod {pod.name} has {_gpus(count)}; "
                    "lower gpus or use a bigger pod",
                )

    def _mode(self, mode: ModeSpec) -> None:
        members = mode.members()
        names = [m.name for m in members]
        ports: dict[int, str] = {}
        for i, member in enumerate(members):
            where = ("services", i)
            if member.name in names[:i]:
                message = f"service {member.name} is listed twice in mode {mode.name}; keep one"
                self.add("Mode", mode.name, where, message)
                continue
            svc = self.services.get(member.name)
            if svc is None:
                if ("Service", member.name) in self.broken:
                    continue
                hint = self._suggest(member.name, self.specs.services, "Service")
                self.add("Mode", mode.name, where, f"service '{member.name}' is not defined; {hint}")
                continue
            for dep in svc.depends_on:
                if dep in self.services and dep not in names:
                    self.add(
                        "Mode", mode.name, where,
                        f"service {member.name} depends on {dep}, which is not in mode {mode.name}; "
                        f"add {dep} to the mode or drop it from depends_on",
                    )
            f = self.fields.get(member.name)
            if f is None:
                continue
            sleep_unknown = self.unknown("Service", member.name, "sleep", "driver")
            if member.state != "active" and (f["sleep"] or "none") == "none" and not sleep_unknown:
                self.add(
                    "Mode", mode.name, where,
                    f"service {member.name} cannot sleep; set sleep: l1|l2|router on it "
                    f"or make it active in mode {mode.name}",
                )
            port = f["port"]
            if port is not None:
                if port in ports:
                    self.add(
                        "Mode", mode.name, where,
                        f"services {ports[port]} and {member.name} of mode {mode.name} both use port {port}; "
                        "give one of them another port",
                    )
                else:
                    ports[port] = member.name

    def _service(self, svc: ServiceSpec) -> None:
        for i, dep in enumerate(svc.depends_on):
            if dep not in self.services and ("Service", dep) not in self.broken:
                self.add(
                    "Service", svc.name, ("depends_on", i),
                    f"service {svc.name} depends on '{dep}', which is not defined; "
                    f"{self._suggest(dep, self.specs.services, 'Service')}",
                )
        f = self.fields.get(svc.name)
        if f is None:
            return
        name = svc.name

        def at(key: str) -> tuple[str, ...]:
            return (key,) if key in svc.model_fields_set else ()

        def unknown(*keys: str) -> bool:
            return self.unknown("Service", name, *keys)

        driver = f["driver"]
        if driver is None and not unknown("driver"):
            self.add(
                "Service", name, (), f"service {name} has no driver; set driver: vllm, llamacpp, fastapi or command"
            )
        if f["port"] is None and not unknown("port"):
            self.add("Service", name, (), f"service {name} has no port; set port: <1-65535>")
        self._env("Service", name, svc.env)
        if f["expose"] and f["api_key"] is None and not unknown("expose", "api_key"):
            self.add(
                "Service", name, at("expose"),
                f"service {name} has expose: true but no api_key; anyone who can reach the pod could use it: "
                "add api_key: {from_env: NAME} (or {from_file: PATH}), or use `gpumod tunnel` instead of expose",
            )
        self._docker(svc, f, at)
        if driver == "docker" and not f["image"] and not unknown("image"):
            self.add("Service", name, (), f"service {name} (driver docker) has no image; set image: <repository:tag>")
        elif driver == "vllm" and not f["model"] and not unknown("model"):
            self.add("Service", name, (), f"service {name} (driver vllm) has no model; set model: <Hugging Face id>")
        elif driver == "llamacpp" and not (f["model_path"] or f["models_dir"] or unknown("model_path", "models_dir")):
            self.add(
                "Service", name, (),
                f"service {name} (driver llamacpp) has no model; "
                "set model_path: <file.gguf> or models_dir: <dir> (router)",
            )
        elif driver in ("command", "fastapi") and not f["command"] and not unknown("command"):
            self.add("Service", name, (), f"service {name} (driver {driver}) has no command; set command: [argv, ...]")
        sleep = f["sleep"] or "none"
        allowed = {"vllm": VLLM_SLEEPS, "llamacpp": LLAMACPP_SLEEPS}.get(driver or "", ("none",))
        if driver is not None and sleep not in allowed and not unknown("sleep"):
            self.add(
                "Service", name, at("sleep"),
                f"driver {driver} cannot sleep at level {sleep}; use sleep: {' or '.join(allowed)}",
            )
        gpus = f["gpus"]
        if isinstance(gpus, list) and any(g < 0 for g in gpus):
            self.add("Service", name, at("gpus"), f"service {name} pins a negative GPU index; indices start at 0")
        if isinstance(gpus, list) and len(set(gpus)) != len(gpus):
            self.add("Service", name, at("gpus"), f"service {name} pins a GPU twice ({gpus}); list each index once")
        if gpu_count_of(gpus) < 1 and not unknown("gpus"):
            message = f"service {name} needs at least one GPU; set gpus: 1 or a list of indices"
            self.add("Service", name, at("gpus"), message)
        footprint = ("vram_mb", "gpu_memory_utilization", "weights_mb", "kv_mb_per_1k", "context")
        if unknown(*footprint):
            pass
        elif f["vram_mb"] is None and f["gpu_memory_utilization"] is None and f["weights_mb"] is None:
            self.add(
                "Service", name, (),
                f"cannot tell the VRAM footprint of {name}; set vram_mb (or gpu_memory_utilization for vLLM)",
            )
        elif f["vram_mb"] is None and f["gpu_memory_utilization"] is None and f["kv_mb_per_1k"] and not f["context"]:
            self.add(
                "Service", name, (),
                f"cannot estimate the KV cache of {name} without a context; set context or vram_mb",
            )

    def _env(self, kind: str, name: str, env: dict[str, str | SecretRef] | None) -> None:
        for key, value in (env or {}).items():
            if isinstance(value, str) and value and looks_secret(key):
                self.add(
                    kind, name, ("env", key),
                    f"env {key} looks like a secret in plain text; use {key}: {{from_env: {key}}} "
                    "or {from_file: PATH} (see docs/secrets.md)",
                )

    def _docker(self, svc: ServiceSpec, f: dict[str, Any], at: Any) -> None:
        """SEC-D7..D9 on the merged fields, whatever the driver; docker-only fields elsewhere."""
        name = svc.name
        if f["privileged"]:
            self.add(
                "Service", name, at("privileged"),
                f"service {name}: privileged containers are refused (SEC-D7): they can take over the pod; "
                "remove privileged: true (GPUs come through --gpus without it)",
            )
        network = f["network"]
        if network is not None:
            reason = REFUSED_NETWORKS.get(network.lower())
            if network.lower().startswith("container:"):
                reason = "it joins another container's network namespace, which may be the host's"
            if reason:
                self.add(
                    "Service", name, at("network"),
                    f"service {name}: network {network} is refused (SEC-D8): {reason}; leave network unset "
                    "(bridge: the port is published on 127.0.0.1 of the pod)",
                )
        for i, volume in enumerate(f["volumes"] or ()):
            loc = ("volumes", i) if "volumes" in svc.model_fields_set else ()
            for message in volume_problems(volume):
                self.add("Service", name, loc, f"service {name}: {message}")
        for i, mapping in enumerate(f["ports"] or ()):
            host, _, _ = mapping.partition(":")
            container = mapping.split(":")[1].split("/")[0]
            loc = ("ports", i) if "ports" in svc.model_fields_set else ()
            if not all(1 <= int(p) <= 65535 for p in (host, container)):
                self.add("Service", name, loc, f"service {name}: port mapping {mapping} needs ports from 1 to 65535")
            elif f["port"] is not None and int(host) == f["port"]:
                self.add(
                    "Service", name, loc,
                    f"service {name}: port mapping {mapping} publishes its own port {f['port']} again; "
                    "set container_port instead",
                )
        if f["driver"] not in (None, "docker"):
            for key in DOCKER_ONLY:
                if f[key] is not None:
                    self.add(
                        "Service", name, at(key),
                        f"service {name}: {key} applies only to driver docker; remove it or set driver: docker",
                    )
        elif f["driver"] == "docker" and f["cwd"] is not None:
            self.add(
                "Service", name, at("cwd"),
                f"service {name}: cwd does not apply to driver docker (the image sets its working directory); "
                "remove it",
            )

    def _cycles(self) -> None:
        graph = {name: [d for d in svc.depends_on if d in self.services] for name, svc in self.services.items()}
        seen: set[tuple[str, ...]] = set()
        state: dict[str, int] = {}  # 1 = on the path, 2 = done
        for root in sorted(graph):
            if root in state:
                continue
            path = [root]
            todo = [iter(graph[root])]
            state[root] = 1
            while todo:
                dep = next(todo[-1], None)
                if dep is None:
                    state[path.pop()] = 2
                    todo.pop()
                elif state.get(dep) == 1:
                    self._cycle(path[path.index(dep):], seen)
                elif dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    todo.append(iter(graph[dep]))

    def _cycle(self, cycle: list[str], seen: set[tuple[str, ...]]) -> None:
        first = cycle.index(min(cycle))
        canon = tuple(cycle[first:] + cycle[:first])
        if canon in seen:
            return
        seen.add(canon)
        start, nxt = canon[0], canon[1 % len(canon)]
        idx = self.services[start].depends_on.index(nxt)
        self.add(
            "Service", start, ("depends_on", idx),
            f"depends_on cycle: {' -> '.join(canon + (canon[0],))}; remove one of these dependencies",
        )

    @staticmethod
    def _suggest(name: str, defined: Iterable[Any], kind: str) -> str:
        names = sorted(d.name for d in defined)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            return f"did you mean '{close[0]}'?"
        if names:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            return f"define a {kind} named '{name}' or use one of: {shown}"
        return f"define a {kind} named '{name}'"
