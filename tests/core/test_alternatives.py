"""Alternatives are offered only when the planner confirms their saving by pricing the changed
desired state again, and applying one to the specs saves exactly what it said (issue 6, item 5)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from gpumod.core.desired import build_desired
from gpumod.core.model import PodPlan
from gpumod.core.plan import plan
from gpumod.spec import PresetCatalog, load_specs

ROOT = Path(__file__).resolve().parents[2]
CATALOG = PresetCatalog.load()

POD = """\
kind: Pod
name: box
host: sim
mode: m
gpus: [{name: NVIDIA GeForce RTX 4090, memory_mb: 24564}]
reserve_mb: 512
"""


def _plan(spec_dir: Path, mode: str | None = None) -> PodPlan:
    specs = load_specs(spec_dir)
    desired = build_desired(specs, CATALOG, {}, mode_override={"box": mode} if mode else {}, pods=None)
    result = plan(desired, [])
    return result.pods[0]


def _texts(pod_plan: PodPlan) -> list[str]:
    assert pod_plan.infeasible is not None
    return [a.text for a in pod_plan.infeasible.alternatives]


def test_no_context_alternative_when_a_preset_fixes_vram_mb() -> None:
    specs = load_specs(ROOT / "specs")
    (sim_box,) = build_desired(specs, CATALOG, {}, mode_override={"sim-box": "everything"})
    glm = sim_box.service("glm-code")
    assert glm is not None and glm.spec.vram_mb == 19100 and glm.spec.context == 32768  # devstral's config
    texts = _texts(plan([sim_box], []).pods[0])
    assert texts and not [t for t in texts if "context" in t], texts


def test_a_context_alternative_saves_what_it_says_once_written_into_the_spec(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / "s.yaml").write_text(
        "kind: Service\nname: coder\ndriver: llamacpp\nport: 7070\nmodel_path: /m/coder.gguf\n"
        "weights_mb: 15000\nkv_mb_per_1k: 170\ncontext: 32768\n---\n"  # no vram_mb: estimated
        "kind: Service\nname: chat\ndriver: vllm\nport: 7071\nmodel: x/chat\nvram_mb: 6000\n---\n"
        "kind: Mode\nname: m\nservices: [coder, chat]\n"
    )
    before = _plan(tmp_path)
    (context,) = [t for t in _texts(before) if "context" in t]
    found = re.fullmatch(r"coder: context 32768 → (\d+) saves (\d+) MiB", context)
    assert found, context
    new, saves = int(found[1]), int(found[2])
    (tmp_path / "s.yaml").write_text((tmp_path / "s.yaml").read_text().replace("context: 32768", f"context: {new}"))
    after = _plan(tmp_path)
    assert before.gpus[0].need_mb - after.gpus[0].need_mb == saves
    assert after.fits  # the largest halving that is enough was offered


def test_lowering_max_awake_is_offered_when_the_standby_budget_does_not_fit(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / "s.yaml").write_text(
        "kind: Service\nname: chat\ndriver: vllm\nport: 7071\nmodel: x/chat\nvram_mb: 15000\n---\n"
        + "".join(
            f"kind: Service\nname: {n}\ndriver: vllm\nport: {p}\nmodel: x/{n}\nvram_mb: 5000\nsleep: l2\n---\n"
            for n, p in (("a", 7072), ("b", 7073))
        )
        + "kind: Mode\nname: m\nmax_awake: 2\n"
        "services: [chat, {name: a, state: standby}, {name: b, state: standby}]\n"
    )
    before = _plan(tmp_path)
    assert not before.fits  # 15000 + 2 x 400 asleep + 2 x 4600 wake-ups + 512 reserve
    texts = _texts(before)
    assert "lower max_awake of mode m from 2 to 1: saves 4600 MiB" in texts, texts
    spec = tmp_path / "s.yaml"
    spec.write_text(spec.read_text().replace("max_awake: 2", "max_awake: 1"))
    after = _plan(tmp_path)
    assert after.fits and before.gpus[0].need_mb - after.gpus[0].need_mb == 4600


def test_every_drop_alternative_for_specs_everything_is_valid_and_saves_what_it_says(tmp_path: Path) -> None:
    """Each "drop" alternative of the README's infeasible mode, applied to a copy of the specs,
    gives valid specs (a dependency goes with its dependents) whose planned need is lower by
    exactly the saving it printed."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    specs_dir = tmp_path / "specs"
    modes = (specs_dir / "modes.yaml").read_text()
    line = "services: [embedding-code, glm-code, embedding, chat]"
    before = _plan_sim_box(specs_dir)
    drops = 0
    for alt in before.infeasible.alternatives:  # type: ignore[union-attr]
        found = re.fullmatch(
            r"drop (\S+)(?: \(with (.+), which depends? on it\))? from mode everything: saves \d+ MiB", alt.text
        )
        if not found:
            continue
        gone = {found[1], *(found[2].split(", ") if found[2] else ())}
        members = [m for m in ("embedding-code", "glm-code", "embedding", "chat") if m not in gone]
        (specs_dir / "modes.yaml").write_text(modes.replace(line, f"services: [{', '.join(members)}]"))
        after = _plan_sim_box(specs_dir)
        assert before.gpus[0].need_mb - after.gpus[0].need_mb == alt.saves_mb, alt.text
        drops += 1
    assert drops == 4
    assert "drop embedding-code (with glm-code, which depends on it) from mode everything: saves 21600 MiB" in [
        a.text for a in before.infeasible.alternatives  # type: ignore[union-attr]
    ]


def _plan_sim_box(spec_dir: Path) -> PodPlan:
    specs = load_specs(spec_dir)
    (sim_box,) = build_desired(specs, CATALOG, {}, mode_override={"sim-box": "everything"})
    return plan([sim_box], []).pods[0]
