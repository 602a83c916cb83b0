"""`gpumod.reach.endpoints_of`: how a client reaches each service, from specs and an observation
(pure): loopback on local pods, the pod's public address for exposed services, a tunnel else."""

from __future__ import annotations

from types import SimpleNamespace

from gpumod.core.model import ObservedPod, ObservedService
from gpumod.reach import endpoints_of
from gpumod.spec.models import PodSpec
from gpumod.spec.resolved import ResolvedService


def pod(host: str, **fields: object) -> PodSpec:
    return PodSpec(kind="Pod", name="p", host=host, mode="m", **fields)


def desired(*services: ResolvedService) -> list[SimpleNamespace]:
    return [SimpleNamespace(name="p", services=[SimpleNamespace(spec=s) for s in services])]


CHAT = ResolvedService(name="chat", driver="vllm", port=8000, model="org/chat")
PUB = ResolvedService(
    name="pub", driver="vllm", port=8001, model="org/pub", expose=True,
    api_key_env="VLLM_API_KEY", secrets=(("VLLM_API_KEY", "env:PUB_KEY"),),
)
OBSERVED = [ObservedPod("p", services=(ObservedService("chat", "running", port=8000),))]


def test_remote_services_are_public_when_exposed_and_tunnelled_else() -> None:
    found = {e.service: e for e in endpoints_of([pod("ssh://root@10.0.0.5")], desired(CHAT, PUB), OBSERVED)}
    assert (found["chat"].reach, found["chat"].url, found["chat"].status) == ("tunnel", None, "running")
    assert (found["pub"].reach, found["pub"].url, found["pub"].status) == (
        "public",
        "http://10.0.0.5:8001/v1",
        "stopped",
    )
    assert found["pub"].api_key == "env:PUB_KEY" and found["pub"].api_key_env == "PUB_KEY"
    assert found["chat"].api_key is None and found["chat"].model == "org/chat"


def test_public_host_wins_over_the_ssh_host() -> None:
    for public, url in (("gpu.example.org", "http://gpu.example.org:8001/v1"), ("2001:db8::7", "http://[2001:db8::7]:8001/v1")):
        found = endpoints_of([pod("ssh://root@10.0.0.5", public_host=public)], desired(PUB), OBSERVED)
        assert found[0].url == url


def test_local_and_sim_pods_are_reached_on_loopback() -> None:
    for host in ("sim", "local"):
        found = {e.service: e for e in endpoints_of([pod(host)], desired(CHAT, PUB), OBSERVED)}
        assert found["chat"].url == "http://127.0.0.1:8000/v1" and found["pub"].url == "http://127.0.0.1:8001/v1"
        assert {e.reach for e in found.values()} == {"local"}


def test_an_unreachable_pod_says_so() -> None:
    found = endpoints_of([pod("ssh://root@10.0.0.5")], desired(CHAT), [ObservedPod("p", reachable=False, error="x")])
    assert found[0].status == "unreachable"
