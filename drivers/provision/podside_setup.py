"""Pod side of the setup facts: read, in one go, what a bare GPU box has of gpumod's set-up.

Why a file of its own: this runs ON the pod, so it is standard library only, Python 3.8 syntax,
no imports from gpumod. It is sent either as its own ``python3 -S -c`` script
(``gpumod.drivers.provision.facts.probe_argv``) or, once wired, as one more part of the pod
agent's script so the facts ride in the same observation round trip. It only gathers raw text
and numbers; every judgement (versions, "is it mounted", which repos are complete) is made by the
pure ``parse_facts`` on the laptop, where it is tested on recorded outputs.

Arguments (a JSON object): ``venv`` (path, ~ allowed), ``models_path`` (or null), ``uv_paths``
(extra places uv may be installed), ``scan_cache`` (bool). Output: one JSON object.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

SETUP_FACTS_VERSION = 1
_TEXT_LIMIT = 8192
_MOUNTS_LIMIT = 256 * 1024


def _run_text(argv, timeout=20.0):
    """[returncode, first bytes of stdout+stderr] or None when the program does not exist."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except OSError:
        return None
    except subprocess.TimeoutExpired:
        return [-1, "timed out after %ss" % timeout]
    return [proc.returncode, proc.stdout[:_TEXT_LIMIT].decode("utf-8", "replace")]


def _read(path, limit=_TEXT_LIMIT):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _find_uv(extra):
    for path in [shutil.which("uv")] + [os.path.expanduser(p) for p in extra] + [
        os.path.expanduser("~/.local/bin/uv"), os.path.expanduser("~/.cargo/bin/uv"),
    ]:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _venv_facts(venv):
    site = sorted(glob.glob(os.path.join(venv, "lib", "python*", "site-packages")))
    dists = []
    vllm_metadata = None
    for directory in site:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dists.append(name[: -len(".dist-info")])
            if name.lower().startswith("vllm-"):
                vllm_metadata = _read(os.path.join(directory, name, "METADATA"), 4096)
    return {
        "path": venv,
        "exists": os.path.isdir(venv),
        "python_ok": os.access(os.path.join(venv, "bin", "python"), os.X_OK),
        "pyvenv_cfg": _read(os.path.join(venv, "pyvenv.cfg")),
        "dists": dists,
        "vllm_metadata": vllm_metadata,
    }


def _hub_cache(models_path):
    """(directory, where the choice came from): the HF hub cache gpumod uses on this pod."""
    if models_path:
        return os.path.join(models_path, "huggingface", "hub"), "models_path"
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return os.path.expanduser(env["HF_HUB_CACHE"]), "HF_HUB_CACHE"
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return os.path.expanduser(env["HUGGINGFACE_HUB_CACHE"]), "HUGGINGFACE_HUB_CACHE"
    if env.get("HF_HOME"):
        return os.path.join(os.path.expanduser(env["HF_HOME"]), "hub"), "HF_HOME"
    xdg = env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(xdg, "huggingface", "hub"), "default"


def _size(path):
    try:
        return os.stat(path).st_size  # follows the snapshot symlink to its blob
    except OSError:
        return -1  # a dangling link: the blob is gone


def _scan_cache(cache):
    """Every ``models--org--name`` folder: refs, snapshot files with sizes, .incomplete blobs."""
    repos: list = []
    try:
        entries = sorted(os.listdir(cache))
    except OSError:
        return repos
    for entry in entries:
        if not entry.startswith("models--"):
            continue
        root = os.path.join(cache, entry)
        refs = {}
        for dirpath, _dirs, files in os.walk(os.path.join(root, "refs")):
            for name in files:
                full = os.path.join(dirpath, name)
                refs[os.path.relpath(full, os.path.join(root, "refs"))] = (_read(full, 256) or "").strip()
        snapshots = {}
        snap_root = os.path.join(root, "snapshots")
        try:
            revisions = sorted(os.listdir(snap_root))
        except OSError:
            revisions = []
        for rev in revisions:
            found: list = []
            base = os.path.join(snap_root, rev)
            for dirpath, _dirs, names in os.walk(base):
                for name in names:
                    full = os.path.join(dirpath, name)
                    found.append([os.path.relpath(full, base), _size(full)])
            snapshots[rev] = sorted(found)
        incomplete = []
        try:
            blobs = sorted(os.listdir(os.path.join(root, "blobs")))
        except OSError:
            blobs = []
        for name in blobs:
            if name.endswith(".incomplete"):
                incomplete.append([name, _size(os.path.join(root, "blobs", name))])
        repos.append({"dir": entry, "refs": refs, "snapshots": snapshots, "incomplete": incomplete})
    return repos


def _disk(path):
    """Free and total bytes of the filesystem PATH is (or would be) on: its nearest existing parent."""
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return {"path": probe, "free": None, "total": None}
    return {"path": probe, "free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}


def setup_facts(args):
    """The raw setup facts of this pod (see the module docstring)."""
    venv = os.path.abspath(os.path.expanduser(args.get("venv") or "~/.gpumod/venv"))
    models_path = args.get("models_path")
    models_path = os.path.abspath(os.path.expanduser(models_path)) if models_path else None
    cache, source = _hub_cache(models_path)
    cache = os.path.abspath(cache)
    uv = _find_uv(args.get("uv_paths") or [])
    where = models_path or cache
    return {
        "version": SETUP_FACTS_VERSION,
        "home": os.path.expanduser("~"),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "nvidia_smi": _run_text(["nvidia-smi"]),
        "uv": {"path": uv, "version": _run_text([uv, "--version"]) if uv else None},
        "venv": _venv_facts(venv),
        "models_path": None if models_path is None else {
            "path": models_path,
            "real": os.path.realpath(models_path),
            "exists": os.path.isdir(models_path),
            "writable": os.access(models_path, os.W_OK),
        },
        "mounts": _read("/proc/mounts", _MOUNTS_LIMIT),
        "hf_cache": {"path": cache, "source": source,
                     "repos": _scan_cache(cache) if args.get("scan_cache", True) else None},
        "disk": _disk(where),
    }


if __name__ == "__main__":  # python3 -S podside_setup.py '{"venv": "~/venv"}'
    sys.stdout.write(json.dumps(setup_facts(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))) + "\n")
