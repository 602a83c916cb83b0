"""Draft spec models for issue 9: a Pod's ``setup:`` block and a Service's ``model:`` source.

Why a separate file: ``models.py`` is being reworked in parallel; these models are complete on
their own and get wired into ``PodSpec.setup`` / ``ServiceSpec.model`` at merge time. Everything
here ends up in a command line on the pod (a package spec, a path, a mount command), so it is
validated at this boundary: no control characters, no option injection, no credentials in URLs.
"""

from __future__ import annotations

import re
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ModelSource", "PodSetup", "VLLM_CHANNELS", "parse_model_source"]

VLLM_CHANNELS = ("release", "nightly", "gpt-oss")
EXACT_VLLM_RE = re.compile(r"^0\.[0-9]+\.[0-9]+([.+-][A-Za-z0-9.]+)?$")
PYTHON_RE = re.compile(r"^3\.[0-9]{1,2}$")
# a PEP 508 requirement without URLs or markers: name, optional extras, optional version specs
PACKAGE_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?"
    r"((==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!-]+)?(,(==|>=|<=|~=|!=|<|>)[A-Za-z0-9.*+!-]+)*$"
)
# Hugging Face repo ids: "name" or "org/name"; letters, digits, '.', '_', '-' (no '--' or '..')
_REPO_PART = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_RE = re.compile(rf"^{_REPO_PART}(/{_REPO_PART})?$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# http(s)://[userinfo@]host[:port][/path]: the userinfo group is refused (credentials in argv)
_URL_RE = re.compile(r"^(https?)://(?:([^@/?#]*)@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#][^\s]*)?$")


def _no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains a control character (newline, tab, NUL ...); write it on one line")
    return value


def _path(value: str, what: str) -> str:
    _no_control(value, what)
    if not (value.startswith("/") or value.startswith("~/") or value == "~"):
        raise ValueError(f"{what} is an absolute path on the pod (/... or ~/...), not {value!r}")
    return value


class PodSetup(BaseModel):
    """``setup:`` of a Pod: what a bare rented GPU box needs before gpumod can start vLLM on it.

    Missing pieces become plan steps (install uv, create the venv, install vLLM ...); a driver too
    old for the chosen vLLM wheel is refused before anything runs. Secrets (HF_TOKEN, API keys)
    are never part of this block: they are passed as step environment at run time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    vllm: str = Field(
        "release",
        description="release | nightly | gpt-oss | an exact version such as 0.10.1",
    )
    python: str = Field("3.12", description="the venv's Python, e.g. '3.12' (uv fetches it if missing)")
    venv: str = Field("~/.gpumod/venv", description="where the venv lives on the pod")
    packages: list[str] = Field(
        default_factory=list, description="extra packages for the venv, e.g. [flashinfer-python, 'psutil>=5']"
    )
    models_path: str | None = Field(
        None,
        description="where model weights live (the HF cache is MODELS_PATH/huggingface/hub); "
        "default: the pod's HF cache (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)",
    )
    mount: str | None = Field(
        None,
        description="a shell command that mounts models_path, e.g. "
        "'mount -t nfs -o nconnect=16 nfs.example:/share /mnt/models' (run when it is not mounted)",
    )
    hf_transfer: bool = Field(False, description="install hf_transfer and enable it for downloads")
    index_url: str | None = Field(
        None, description="a PEP 503 package index to install from instead of PyPI (a mirror; no credentials)"
    )

    @field_validator("vllm")
    @classmethod
    def _vllm(cls, value: str) -> str:
        if value in VLLM_CHANNELS or EXACT_VLLM_RE.match(value):
            return value
        raise ValueError(
            f"vllm is one of {', '.join(VLLM_CHANNELS)} or an exact version like 0.10.1, not {value!r}"
        )

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not PYTHON_RE.match(value):
            raise ValueError(f"python is a version like '3.12', not {value!r}")
        return value

    @field_validator("venv")
    @classmethod
    def _venv(cls, value: str) -> str:
        return _path(value, "venv")

    @field_validator("models_path")
    @classmethod
    def _models_path(cls, value: str | None) -> str | None:
        return None if value is None else _path(value, "models_path")

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[str]) -> list[str]:
        for item in value:
            if not PACKAGE_RE.match(item):
                raise ValueError(
                    f"package {item!r} is not a plain requirement (name, optional [extras], optional "
                    "version such as ==1.2 or >=1.2); URLs, markers and options are not accepted"
                )
        return value

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_control(value, "mount")
        if not value.strip():
            raise ValueError("mount is a command; leave it out when nothing needs mounting")
        return value

    @field_validator("index_url")
    @classmethod
    def _index_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_control(value, "index_url")
        found = _URL_RE.match(value)
        if found is None:
            raise ValueError(f"index_url is an http(s) URL, not {value!r}")
        if found.group(2) is not None:
            raise ValueError("index_url must not hold credentials (they would end up in argv on the pod)")
        return value


class ModelSource(BaseModel):
    """``model:`` of a Service as a download source: a Hugging Face repo and an optional revision."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    repo: str = Field(description="Hugging Face repo id, e.g. Qwen/Qwen3-0.6B")
    revision: str | None = Field(None, description="branch, tag or commit (default: main)")

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not REPO_RE.match(value) or "--" in value or ".." in value:
            raise ValueError(f"model repo is a Hugging Face id like 'org/name', not {value!r}")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and (not REVISION_RE.match(value) or ".." in value):
            raise ValueError(f"model revision is a branch, tag or commit hash, not {value!r}")
        return value


def parse_model_source(value: Union[str, dict[str, Any], ModelSource]) -> ModelSource:
    """``"org/name"``, ``"org/name@rev"`` or ``{repo, revision}`` → ModelSource (raises ValueError)."""
    if isinstance(value, ModelSource):
        return value
    if isinstance(value, str):
        repo, _, revision = value.partition("@")
        return ModelSource(repo=repo, revision=revision or None)
    return ModelSource.model_validate(value)
