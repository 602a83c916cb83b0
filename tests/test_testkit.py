"""The shared test helpers: `free_port` never hands out a port twice (a repeated port once made two
services of a copied spec repo collide, failing an e2e test at random) and keeps xdist workers apart."""

from __future__ import annotations

import pytest

import testkit


def test_free_port_never_repeats_within_a_process() -> None:
    ports = [testkit.free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    low, high = testkit._port_slice()
    assert all(low <= p < high for p in ports)
    assert high <= 32768  # below the kernel's ephemeral range, which outgoing connections use


def test_xdist_workers_draw_from_disjoint_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    slices = []
    for n in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        slices.append(range(*testkit._port_slice()))
    assert all(set(a).isdisjoint(b) for i, a in enumerate(slices) for b in slices[i + 1:])
    assert all(len(s) >= 1000 for s in slices)
