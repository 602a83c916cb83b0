"""The reconcile loop as a hypothesis state machine: a user switches modes, edits
services and kills processes in any order, and every reconcile pass must (1) stay within every
GPU's budget at each wave, (2) leave nothing to do afterwards, (3) touch nothing when the
desired state does not fit. Pure: plan() plus the execution model of plan_sim."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod
from gpumod.core.plan import plan
from gpumod.spec.resolved import ResolvedService
from plan_sim import apply, peaks

NAMES = ("emb", "chat", "code", "rerank", "hyde", "asr")
SLEEPS = {"emb": "none", "chat": "l1", "code": "router", "rerank": "l2", "hyde": "l1", "asr": "none"}


class ReconcileLoop(RuleBasedStateMachine):
    @initialize(
        gpus=st.lists(st.sampled_from([16384, 24564, 40960]), min_size=1, max_size=2),
        sizes=st.lists(st.integers(500, 14000), min_size=len(NAMES), max_size=len(NAMES)),
    )
    def setup(self, gpus: list[int], sizes: list[int]) -> None:
        self.gpus = tuple(GpuInfo(i, "GPU", mb) for i, mb in enumerate(gpus))
        self.sizes = dict(zip(NAMES, sizes))
        self.versions = {name: 1 for name in NAMES}
        self.members: dict[str, str] = {}
        self.max_awake = 1
        self.observed = ObservedPod("box", gpus=self.gpus, observed_at=1000.0)
        self.last_fit = True

    # -- what a user does ---------------------------------------------------------------------

    @rule(
        members=st.dictionaries(
            st.sampled_from(NAMES), st.sampled_from(["active", "active", "sleeping", "standby"]), max_size=5
        ),
        max_awake=st.integers(0, 2),
    )
    def switch_mode(self, members: dict[str, str], max_awake: int) -> None:
        self.members = {n: (t if SLEEPS[n] != "none" else "active") for n, t in members.items()}
        self.max_awake = max_awake

    @rule(name=st.sampled_from(NAMES))
    def edit_service(self, name: str) -> None:
        self.versions[name] += 1

    @rule(data=st.data())
    @precondition(lambda self: any(s.status == "running" for s in self.observed.services))
    def kill_a_process(self, data: st.DataObject) -> None:
        running = sorted(s.name for s in self.observed.services if s.status == "running")
        victim = data.draw(st.sampled_from(running))
        self.observed = replace(
            self.observed,
            services=tuple(replace(s, status="failed") if s.name == victim else s for s in self.observed.services),
        )

    # -- what gpumod does ---------------------------------------------------------------------

    def desired(self) -> DesiredPod:
        services = []
        for i, name in enumerate(NAMES):
            if name not in self.members:
                continue
            sleep = SLEEPS[name]
            awake = self.sizes[name]
            spec = ResolvedService(
                name=name, driver="vllm", port=8000 + i, sleep=sleep,  # type: ignore[arg-type]
                depends_on=("emb",) if name == "chat" and "emb" in self.members else (),
                extra=(("version", self.versions[name]),),
            )
            asleep = awake if sleep == "none" else min(awake, 400)
            services.append(DesiredService(name, self.members[name], spec, Footprint(awake, asleep)))  # type: ignore[arg-type]
        return DesiredPod("box", "m", self.gpus, 512, self.max_awake, tuple(services))

    @rule()
    def reconcile(self) -> None:
        desired = self.desired()
        pod_plan = plan([desired], [self.observed]).pod("box")
        assert pod_plan is not None
        self.last_fit = pod_plan.fits
        if not pod_plan.fits:
            assert pod_plan.steps == ()  # infeasible: nothing is touched
            return
        budget = {b.index: b.need_mb for b in pod_plan.gpus}
        for used in peaks(desired, self.observed, pod_plan):
            for g in self.gpus:
                assert used.get(g.index, 0) + desired.reserve_mb <= min(g.total_mb, budget[g.index])
        self.observed = apply(desired, self.observed, pod_plan)
        again = plan([desired], [self.observed]).pod("box")
        assert again is not None and again.steps == (), [s.render() for s in again.steps]

    @invariant()
    def only_wanted_services_survive_a_fitting_reconcile(self) -> None:
        if self.last_fit and hasattr(self, "observed"):
            alive = {s.name for s in self.observed.services}
            assert alive <= set(NAMES)


ReconcileLoop.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestReconcileLoop = ReconcileLoop.TestCase
