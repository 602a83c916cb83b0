"""Setup steps: what a pod still needs (given its ``SetupFacts``) to match its ``setup:`` block.

Pure: ``setup_steps(setup, facts)`` returns the missing pieces in the order they must run, each
with its reason and its remote argv (argv lists, quoted by the transport, never a shell string
built from spec values except the user's own ``mount:`` command, which is run by ``sh -c`` as
written). Facts of a set-up pod give no steps. Secrets are never in argv: an ``HF_TOKEN`` or an
index password travels as step environment from the executor.

Refusals come first and touch nothing: a driver too old for the CUDA major the chosen vLLM wheel
is built against, no driver at all, or a venv on another Python than asked.

Minimum driver per CUDA major (Linux, "minor version compatibility": any toolkit of the major
runs on at least this driver) — NVIDIA, CUDA Compatibility, "Minor Version Compatibility",
Table 1 (docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html) and the
CUDA Toolkit release notes (first driver of each major: 450.80.02, 525.60.13, 580.65.06).

CUDA major of vLLM's wheels — vLLM install docs ("vLLM contains pre-compiled C++ and CUDA
binaries"): 11.8 up to 0.2.1, CUDA 12.1 from 0.2.2 (vllm-project/vllm PR #1527), 12.4/12.6/12.8
in the 0.7–0.10 series, 12.9 in the docs of 0.11–0.21; the gpt-oss build (0.10.1+gptoss) pulls
PyTorch nightly cu128 and the nightly index builds 12.9. All of these are CUDA 12. Update the
table when a PyPI release moves its default wheel to CUDA 13.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gpumod.drivers.provision.facts import SetupFacts, normalize_name, probe_args
from gpumod.errors import ProvisionRefusedError
from gpumod.spec.setup_models import PodSetup

__all__ = [
    "MIN_DRIVER_BY_CUDA_MAJOR", "SetupRefusedError", "SetupStep", "TOOLS_DIR", "UV_INSTALLER_URL",
    "driver_satisfies", "setup_probe_args", "setup_refusals", "setup_steps", "uv_location", "vllm_satisfied",
    "wheel_cuda_major",
]

MIN_DRIVER_BY_CUDA_MAJOR: dict[int, str] = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
# (first vLLM version, CUDA major of its default PyPI wheel), newest last
_VLLM_WHEEL_CUDA: tuple[tuple[tuple[int, ...], int], ...] = (((0, 0, 0), 11), ((0, 2, 2), 12))
_CHANNEL_CUDA = {"release": 12, "nightly": 12, "gpt-oss": 12}

TOOLS_DIR = ".gpumod/tools"  # under the pod user's home: uv lives in TOOLS_DIR/bin
UV_INSTALLER_URL = "https://astral.sh/uv/install.sh"
NIGHTLY_INDEX = "https://wheels.vllm.ai/nightly"
GPT_OSS_INDEX = "https://wheels.vllm.ai/gpt-oss/"
GPT_OSS_TORCH_INDEX = "https://download.pytorch.org/whl/nightly/cu128"
GPT_OSS_VERSION = "0.10.1+gptoss"
DOWNLOAD_PACKAGES = ("huggingface_hub",)  # downloads run huggingface_hub in the setup venv


class SetupRefusedError(ProvisionRefusedError):
    """The pod cannot be set up as asked; nothing was run. ``reasons`` lists every refusal."""

    hint = "fix the pod (driver, venv) or its setup: block, then plan again"

    def __init__(self, reasons: list[str], pod: str = "") -> None:
        self.reasons = reasons
        where = f"pod {pod}: " if pod else ""
        super().__init__(where + "; ".join(reasons), pod=pod, reasons=reasons)


@dataclass(frozen=True)
class SetupStep:
    """One missing piece. ``commands`` run in order on the pod; the step fails at the first error."""

    action: str  # install-uv | create-models-dir | mount-models | create-venv | install-vllm | ...
    title: str  # "install vllm==0.10.1", shown as "⚙ install vllm==0.10.1"
    reason: str
    commands: tuple[tuple[str, ...], ...]
    env: tuple[tuple[str, str], ...] = ()  # non-secret environment for the commands

    def shell(self) -> str:
        """How the commands read in a shell (for ``--dry-run`` output and logs; not how they run)."""
        return " && ".join(shlex.join(c) for c in self.commands)


# ---------------------------------------------------------------- versions


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", text.split("+")[0])[:4])


def wheel_cuda_major(vllm: str) -> int:
    """CUDA major the vLLM wheel of a channel or exact version is built against (see module doc)."""
    if vllm in _CHANNEL_CUDA:
        return _CHANNEL_CUDA[vllm]
    wanted = _version_tuple(vllm)
    major = _VLLM_WHEEL_CUDA[0][1]
    for first, cuda in _VLLM_WHEEL_CUDA:
        if wanted >= first:
            major = cuda
    return major


def driver_satisfies(driver_version: str, cuda_major: int) -> bool:
    minimum = MIN_DRIVER_BY_CUDA_MAJOR.get(cuda_major)
    return minimum is None or _version_tuple(driver_version) >= _version_tuple(minimum)


def vllm_wanted(setup: PodSetup) -> str:
    """What gets installed, as a requirement (``vllm``, ``vllm==0.10.1``, ``vllm==0.10.1+gptoss``)."""
    if setup.vllm == "gpt-oss":
        return f"vllm=={GPT_OSS_VERSION}"
    if setup.vllm in ("release", "nightly"):
        return "vllm"
    return f"vllm=={setup.vllm}"


def vllm_satisfied(setup: PodSetup, installed: str | None) -> bool:
    """Does the installed vLLM match the channel or pin? (release: any final release; nightly: a
    dev build; gpt-oss: the +gptoss build; exact: that version)."""
    if installed is None:
        return False
    if setup.vllm == "release":
        return not re.search(r"\.dev|rc[0-9]|a[0-9]|b[0-9]|\+", installed)
    if setup.vllm == "nightly":
        return "dev" in installed
    if setup.vllm == "gpt-oss":
        return installed.endswith("+gptoss")
    return installed == setup.vllm


def _requirement_name(requirement: str) -> str:
    return normalize_name(re.split(r"[\[<>=!~,]", requirement, maxsplit=1)[0])


def _pinned(requirement: str) -> str | None:
    found = re.search(r"==([^,]+)$", requirement)
    return found.group(1) if found else None


def _missing_packages(requirements: list[str], facts: SetupFacts) -> list[str]:
    missing = []
    for requirement in requirements:
        have = facts.package(_requirement_name(requirement))
        pin = _pinned(requirement)
        if have is None or (pin is not None and have != pin):
            missing.append(requirement)
    return missing


# ---------------------------------------------------------------- paths


def tools_location(facts: SetupFacts, tools_dir: str | None = None) -> str:
    """Where gpumod keeps its tools (uv) on this pod: ``tools_dir`` (``~/`` expanded), else ~/TOOLS_DIR."""
    if tools_dir:
        return facts.home.rstrip("/") + tools_dir[1:] if tools_dir.startswith("~") else tools_dir.rstrip("/")
    return f"{facts.home.rstrip('/')}/{TOOLS_DIR}"


def uv_location(facts: SetupFacts, tools_dir: str | None = None) -> str:
    """Where gpumod installs uv on this pod (and where the probe also looks)."""
    return f"{tools_location(facts, tools_dir)}/bin/uv"


def setup_probe_args(setup: PodSetup, *, scan_cache: bool = True, tools_dir: str | None = None) -> dict[str, Any]:
    """The probe's arguments for a pod with this ``setup:`` (uv is also looked for where gpumod puts it)."""
    uv = f"{tools_dir.rstrip('/')}/bin/uv" if tools_dir else f"~/{TOOLS_DIR}/bin/uv"
    return probe_args(setup.venv, setup.models_path, uv_paths=[uv], scan_cache=scan_cache)


# ---------------------------------------------------------------- refusals and steps


def setup_refusals(setup: PodSetup, facts: SetupFacts) -> list[str]:
    """Why this pod cannot be set up as asked (empty: it can). Names both versions."""
    reasons = []
    cuda = wheel_cuda_major(setup.vllm)
    wanted = vllm_wanted(setup)
    if facts.driver_version is None:
        reasons.append(f"{facts.nvidia_smi_error or 'no NVIDIA driver'}; {wanted} needs an NVIDIA driver "
                       f">= {MIN_DRIVER_BY_CUDA_MAJOR.get(cuda, '?')} (CUDA {cuda})")
    elif not driver_satisfies(facts.driver_version, cuda):
        reasons.append(
            f"NVIDIA driver {facts.driver_version} (CUDA {facts.cuda_version or '?'}) is too old for {wanted}: "
            f"its wheels are built for CUDA {cuda}, which needs driver >= {MIN_DRIVER_BY_CUDA_MAJOR[cuda]}; "
            "pick a pod image with a newer driver (the driver cannot be upgraded from inside a container)"
        )
    if facts.venv_python is not None and not _same_python(facts.venv_python, setup.python):
        reasons.append(
            f"the venv {facts.venv_path} has Python {facts.venv_python}, setup asks for {setup.python}: "
            f"set python: '{'.'.join(facts.venv_python.split('.')[:2])}' or remove the venv (rm -rf {facts.venv_path})"
        )
    elif facts.venv_exists and facts.venv_python is None:
        reasons.append(f"{facts.venv_path} exists but is not a usable venv (no bin/python or pyvenv.cfg); "
                       "remove it or point setup.venv elsewhere")
    if setup.models_path and facts.models_path_exists and not facts.models_path_writable and not setup.mount:
        reasons.append(f"models_path {facts.models_path} is not writable by the pod user")
    return reasons


def _same_python(have: str, want: str) -> bool:
    return have.split(".")[:2] == want.split(".")[:2]


def _index_args(setup: PodSetup) -> list[str]:
    return ["--index-url", setup.index_url] if setup.index_url else []


def setup_steps(
    setup: PodSetup, facts: SetupFacts, *, python: str = "python3", pod: str = "", tools_dir: str | None = None
) -> list[SetupStep]:
    """The steps that bring this pod to its ``setup:``; raises SetupRefusedError (nothing runs)."""
    refusals = setup_refusals(setup, facts)
    if refusals:
        raise SetupRefusedError(refusals, pod=pod)
    steps: list[SetupStep] = []
    uv = facts.uv_path or uv_location(facts, tools_dir)
    if facts.uv_path is None:
        steps.append(_install_uv(setup, tools_location(facts, tools_dir), python))
    if setup.models_path and setup.mount and facts.mount is None:
        steps.append(SetupStep(
            "mount-models", f"mount {facts.models_path}", f"{facts.models_path} is not a mount point",
            (("mkdir", "-p", str(facts.models_path)), ("sh", "-c", setup.mount)),
        ))
    elif setup.models_path and not facts.models_path_exists:
        steps.append(SetupStep(
            "create-models-dir", f"create {facts.models_path}", f"{facts.models_path} does not exist",
            (("mkdir", "-p", str(facts.models_path)),),
        ))
    venv_python = f"{facts.venv_path}/bin/python"
    if facts.venv_python is None:
        steps.append(SetupStep(
            "create-venv", f"create venv {facts.venv_path} (Python {setup.python})",
            f"no venv at {facts.venv_path}",
            ((uv, "venv", "--python", setup.python, facts.venv_path),),
        ))
    installed = facts.vllm_version if facts.venv_python else None
    if not vllm_satisfied(setup, installed):
        steps.append(_install_vllm(setup, uv, venv_python, installed))
    wanted = list(DOWNLOAD_PACKAGES) + list(setup.packages)
    missing = _missing_packages(wanted, facts) if facts.venv_python else wanted
    if missing:
        steps.append(SetupStep(
            "install-packages", "install " + " ".join(missing),
            "not in the venv: " + ", ".join(missing),
            ((uv, "pip", "install", "--python", venv_python, *_index_args(setup), *missing),),
        ))
    if setup.hf_transfer and (facts.venv_python is None or facts.package("hf_transfer") is None):
        steps.append(SetupStep(
            "enable-hf-transfer", "enable hf_transfer",
            "hf_transfer: true and the package is not in the venv (downloads then get HF_HUB_ENABLE_HF_TRANSFER=1)",
            ((uv, "pip", "install", "--python", venv_python, *_index_args(setup), "hf_transfer"),),
        ))
    return steps


def _install_uv(setup: PodSetup, tools: str, python: str) -> SetupStep:
    if setup.index_url:  # a mirror (or no internet): uv's own wheel from the index, in a tool venv
        parts = urlsplit(setup.index_url)
        # pip ignores a plain-http index on any host but localhost unless it is named trusted
        trusted = ("--trusted-host", parts.netloc) if parts.scheme == "http" else ()
        commands: tuple[tuple[str, ...], ...] = (
            (python, "-m", "venv", tools),
            (f"{tools}/bin/python", "-m", "pip", "install", "--quiet", "--index-url", setup.index_url, *trusted,
             "uv"),
        )
        env: tuple[tuple[str, str], ...] = ()
    else:  # astral's installer, told not to touch any shell rc file
        script = f"curl -LsSf {shlex.quote(UV_INSTALLER_URL)} | sh"
        commands = (("mkdir", "-p", f"{tools}/bin"), ("sh", "-c", script))
        env = (("UV_INSTALL_DIR", f"{tools}/bin"), ("UV_NO_MODIFY_PATH", "1"))
    return SetupStep("install-uv", "install uv", "uv not found on the pod", commands, env)


def _install_vllm(setup: PodSetup, uv: str, venv_python: str, installed: str | None) -> SetupStep:
    base = [uv, "pip", "install", "--python", venv_python, *_index_args(setup)]
    wanted = vllm_wanted(setup)
    if setup.vllm == "nightly":
        argv = [*base, "-U", "vllm", "--torch-backend=auto", "--extra-index-url", NIGHTLY_INDEX]
        title = "install vllm (nightly)"
    elif setup.vllm == "gpt-oss":
        argv = [*base, "--pre", wanted, "--extra-index-url", GPT_OSS_INDEX, "--extra-index-url",
                GPT_OSS_TORCH_INDEX, "--index-strategy", "unsafe-best-match"]
        title = f"install {wanted}"
    else:
        argv = [*base, wanted, "--torch-backend=auto"]
        title = f"install {wanted}" if setup.vllm != "release" else "install vllm (latest release)"
    reason = "vLLM is not installed" if installed is None else f"vLLM {installed} does not match vllm: {setup.vllm}"
    return SetupStep("install-vllm", title, reason, (tuple(argv),))
