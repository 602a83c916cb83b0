"""pytest fixtures for pods: `netns_pods` (factory of sshd pods) and `systemd_pod` (real systemd).

Why: tests of the SSH transport, fleets and the systemd supervisor need real machines; these
fixtures give them network-namespace pods (infra.netns) and a systemd-as-PID-1 pod
(infra.systemd_pod), and guarantee teardown by PID and by name. Load with
`pytest_plugins = ["infra.pod_fixtures"]` in tests/conftest.py.

Where pods cannot run (not root, no namespaces, no sshd or systemd) the fixtures skip with the
reason; with GPUMOD_REQUIRE_POD_TESTS=1 (set it in CI) they fail instead, so CI cannot go green by
silently skipping them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .netns import PodNetwork, SshKeys, create_pods, netns_unavailable_reason
from .systemd_pod import SystemdPod, start_systemd_pod, systemd_unavailable_reason

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "GPUMOD_REQUIRE_POD_TESTS"


def skip_unless_available(reason: str | None) -> None:
    """Skip (or fail, under GPUMOD_REQUIRE_POD_TESTS=1) when REASON says pods cannot run."""
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but pods cannot run here: {reason}")
    pytest.skip(reason)


def require_netns_pods() -> None:
    skip_unless_available(netns_unavailable_reason())


def require_systemd_pod() -> None:
    skip_unless_available(systemd_unavailable_reason())


def pod_binds() -> list[Path]:
    """Host dirs a systemd pod must see read-only: the repo, and the venv if it lives elsewhere."""
    binds = [REPO]
    prefix = Path(sys.prefix).resolve()
    if not prefix.is_relative_to(REPO) and prefix != Path("/usr"):
        binds.append(prefix)
    return binds


@pytest.fixture
def netns_pods(tmp_path: Path) -> Iterator[Callable[..., PodNetwork]]:
    """Factory: `net = netns_pods(2)` gives a bridge + 2 sshd pods (`net.pods`, `net.keys`).

    Optional `keys=SshKeys(...)` reuses a client key/authorized_keys/known_hosts from elsewhere.
    Every network made is torn down after the test; a failed teardown fails the test.
    """
    require_netns_pods()
    nets: list[PodNetwork] = []

    def make(n: int = 2, keys: SshKeys | None = None) -> PodNetwork:
        net = create_pods(n, tmp_path / f"podnet{len(nets)}", keys)
        nets.append(net)
        return net

    yield make
    errors = [e for net in nets for e in net.teardown()]
    if errors:
        pytest.fail("pod teardown: " + "; ".join(errors))


@pytest.fixture(scope="module")
def systemd_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdPod]:
    """One systemd-as-PID-1 pod per test module, on its own bridge.

    Visible inside at the same paths: the repo and its venv (read-only), and pytest's base temp
    dir (read-write), so every test's tmp_path is shared with the pod. Reach it with
    `systemd_pod.ssh(cmd)`, asyncssh at `systemd_pod.ip` with `systemd_pod.keys`, or
    `systemd_pod.nsenter_argv(...)`. Tests must clean up the units they create.
    """
    require_systemd_pod()
    base = tmp_path_factory.getbasetemp()
    pod = start_systemd_pod(tmp_path_factory.mktemp("systemd_pod"), binds=pod_binds(), rw_binds=[base])
    try:
        yield pod
    finally:
        errors = pod.stop()
    if errors:
        pytest.fail("systemd pod teardown: " + "; ".join(errors))
