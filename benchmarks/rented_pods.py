"""Issue 9 benchmarks (printed, not asserted): set-up no-op on 5 pods vs a no-op `plan`, and
download throughput through `gpumod apply` vs the downloader run directly on the pod.

Five network-namespace pods behind real sshds (tests/infra/netns.py; needs root), a local
package index and a local hub on their bridge. The pods share the host filesystem, so they share
one venv and one model cache: pod 0 is set up first, then every pod applies (starts its
services). Then, median of N runs each: `gpumod setup DIR --yes` (every pod set up: no steps) and
`gpumod plan DIR` (no changes) — target setup <= 2x plan. Last, a fresh model of SIZE MiB:
`gpumod apply` downloads it (the step's seconds, from its output line) and the same downloader
fetches it again into an empty cache over plain `ssh` — target gpumod >= 0.9x direct.

    .venv/bin/python benchmarks/rented_pods.py [-n 3] [--size 256]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from infra.hubserver import HubRepo, HubServer  # noqa: E402
from infra.netns import create_pods, netns_unavailable_reason, ssh_run  # noqa: E402
from infra.pkgindex import standard_index  # noqa: E402

from gpumod.drivers.provision import download_argv  # noqa: E402

MiB = 1 << 20


def gpumod(
    home: Path, env: dict[str, str], *args: str, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "gpumod.cli", *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "GPUMOD_HOME": str(home), "COLUMNS": "200", **env},
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise SystemExit(f"gpumod {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return time.perf_counter() - started, res


def specs_for(dest: Path, tmp: Path, net, index_url: str, repo: str) -> None:
    dest.mkdir(exist_ok=True)
    docs: list[dict] = [
        {"kind": "Service", "name": "chat", "driver": "vllm", "model": repo, "port": 8001, "vram_mb": 8000},
        {"kind": "Mode", "name": "chat", "services": ["chat"]},
    ]
    for i, pod in enumerate(net.pods):
        docs.append({
            "kind": "Pod", "name": f"pod-{i}", "host": f"ssh://root@{pod.ip}:22", "mode": "chat",
            "known_hosts": str(net.keys.known_hosts), "identity_file": str(net.keys.client_key),
            "python": sys.executable, "state_dir": str(tmp / "state"),
            "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}], "sim": {"load_s": 0.1},
            "setup": {"vllm": "0.10.1", "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                      "venv": str(tmp / "venv"), "models_path": str(tmp / "models"), "index_url": index_url},
        })
    (dest / "fleet.yaml").write_text(yaml.safe_dump_all(docs))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="MiB of the download benchmark's model")
    opts = parser.parse_args()
    reason = netns_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    small = HubRepo.generate("bench/small", {"model.safetensors": 1 * MiB}, {"config.json": "{}\n"})
    big = HubRepo.generate("bench/big", {"model.safetensors": opts.size * MiB}, {"config.json": "{}\n"})
    with tempfile.TemporaryDirectory(prefix="gpumod-bench-") as tmp_name:
        tmp = Path(tmp_name)
        net = create_pods(5, tmp / "net")
        index = standard_index(tmp / "index")
        hub = None
        try:
            url = index.serve(host=net.host_ip)
            hub = HubServer([small, big], host=net.host_ip).start()
            env = {"HF_ENDPOINT": hub.endpoint}
            specs = tmp / "specs"
            specs_for(specs, tmp, net, url, small.repo_id)
            t, _ = gpumod(tmp / "home", env, "setup", str(specs), "--pod", "pod-0", "--yes")
            print(f"set-up of a bare pod (uv, venv, vllm, huggingface_hub from the local index): {t:.1f} s")
            gpumod(tmp / "home", env, "apply", str(specs), "--yes")
            setup_s = [gpumod(tmp / "home", env, "setup", str(specs), "--yes")[0] for _ in range(opts.n)]
            plan_s = [gpumod(tmp / "home", env, "plan", str(specs))[0] for _ in range(opts.n)]
            s, p = statistics.median(setup_s), statistics.median(plan_s)
            print(f"no-op on 5 pods: setup {s:.2f} s, plan {p:.2f} s, ratio {s / p:.2f} (target <= 2)")

            specs_for(specs, tmp, net, url, big.repo_id)
            _, res = gpumod(tmp / "home", env, "apply", str(specs), "--pod", "pod-0", "--yes")
            found = re.search(r"↓ download bench/big .*? ok \(([0-9.]+)s\)", res.stdout)
            if found is None:
                raise SystemExit(f"no download step in the output:\n{res.stdout}")
            via = float(found.group(1))
            cache = tmp / "direct-cache"
            argv = download_argv(str(tmp / "venv" / "bin" / "python"), big.repo_id, str(cache), endpoint=hub.endpoint)
            started = time.perf_counter()
            direct = ssh_run(net.keys, net.pods[0].ip, shlex.join(argv), timeout=900)
            direct_s = time.perf_counter() - started
            if direct.returncode != 0:
                raise SystemExit(f"the direct download failed: {direct.stderr[-500:]}")
            size = big.size / MiB
            print(f"download {size:.0f} MiB: gpumod {size / via:.0f} MiB/s ({via:.2f} s), "
                  f"direct {size / direct_s:.0f} MiB/s ({direct_s:.2f} s), ratio {direct_s / via:.2f} (target >= 0.9)")
            gpumod(tmp / "home", env, "down", str(specs), "--yes")
        finally:
            if hub is not None:
                hub.stop()
            index.stop()
            net.teardown()
            shutil.rmtree(tmp / "models", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
