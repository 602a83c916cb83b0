"""The words the plan uses for why: a spec change names the fields it touched, and a service whose
starts keep failing is described by its recorded cause (a health timeout is no crash loop)."""

from __future__ import annotations

from dataclasses import replace

from gpumod.core.model import DesiredPod, DesiredService, Footprint, GpuInfo, ObservedPod, ObservedService
from gpumod.core.plan import plan
from gpumod.spec.resolved import ResolvedService

GPU = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564)


def svc(name: str, **spec) -> DesiredService:
    resolved = ResolvedService(name=name, driver="vllm", port=8000, sleep="l1", context=32768, **spec)
    return DesiredService(name, "active", resolved, Footprint(1000, 300))


def _plan(desired: DesiredService, *seen: ObservedService, extra: tuple[DesiredService, ...] = ()):
    pod = DesiredPod("box", "m", (GPU,), 512, 1, (desired, *extra))
    return plan([pod], [ObservedPod("box", gpus=(GPU,), services=seen, observed_at=1000.0)]).pod("box")


def started_from(s: DesiredService) -> ObservedService:
    """What the pod records when gpumod starts ``s``: its hash and a digest per field."""
    return ObservedService(
        s.name, "running", s.spec_hash, (0,), spec_fields=tuple(sorted(s.spec.field_digests().items()))
    )


def test_a_spec_change_names_the_fields_that_changed() -> None:
    old = svc("chat")
    new = replace(old, spec=replace(old.spec, context=8192, port=8001))
    box = _plan(new, started_from(old))
    reasons = [(s.action, s.reason) for s in box.steps]
    assert reasons == [("stop", "spec changed: context, port; restart"), ("restart", "spec changed: context, port")]


def test_a_record_without_field_digests_falls_back_to_the_hashes() -> None:
    old = svc("chat")
    new = replace(old, spec=replace(old.spec, context=8192))
    box = _plan(new, replace(started_from(old), spec_fields=()))
    assert box.steps[-1].reason == f"spec changed ({old.spec_hash}→{new.spec_hash})"


def test_an_unchanged_spec_restarts_nothing() -> None:
    chat = svc("chat")
    assert _plan(chat, started_from(chat)).steps == ()


def test_a_recorded_cause_names_the_failure_instead_of_crash_looping() -> None:
    chat, ui = svc("chat"), svc("ui", depends_on=("chat",))
    failed = ObservedService(
        "chat", "failed", chat.spec_hash, (0,), failures=2, last_failure_at=995.0,
        last_error="not healthy after 6 s (not listening yet)",
    )
    box = _plan(chat, failed, extra=(ui,))
    reasons = {d.service: d.reason for d in box.deferred}
    assert reasons == {
        "chat": "2 failed starts, last: not healthy after 6 s (not listening yet); retry after 5s",
        "ui": "waits for chat, which is failing to start",
    }
    assert "crash" not in " ".join(reasons.values())


def test_a_failed_start_whose_backoff_is_over_is_retried_with_its_cause() -> None:
    chat = svc("chat")
    failed = ObservedService(
        "chat", "failed", chat.spec_hash, (0,), failures=1, last_failure_at=900.0,
        last_error="not healthy after 6 s (not listening yet)",
    )
    (step,) = _plan(chat, failed).steps
    assert (step.action, step.reason) == (
        "start",
        "retry (1 failed start, last: not healthy after 6 s (not listening yet))",
    )
