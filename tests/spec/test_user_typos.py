"""Spec mistakes a new user makes, each reported at its line (found by using gpumod cold, as the
acceptance checks do): a file linked into the repo next to itself, a symlink loop, a VRAM figure
with a few digits too many."""

from __future__ import annotations

from pathlib import Path

from ._helpers import SIM_POD as POD
from ._helpers import problems_of

SERVICE = """
kind: Service
name: app
driver: command
command: [sleep, "100"]
port: 40001
vram_mb: {vram}
"""
MODE = """
kind: Mode
name: m
services: [app]
"""


def test_a_file_linked_next_to_itself_is_read_once(repo) -> None:
    """`ln -s modes.yaml all-modes.yaml` (or a link to a shared file) used to load every document
    twice and report each as a duplicate of itself ("modes.yaml:2 ... also at modes.yaml:2")."""
    root = repo(**{"pod.yaml": POD, "services.yaml": SERVICE.format(vram=100), "modes.yaml": MODE})
    (root / "a-link.yaml").symlink_to("modes.yaml")
    (root / "sub").mkdir()
    (root / "sub" / "svc.yaml").symlink_to(root / "services.yaml")
    assert problems_of(root) == []


def test_a_symlink_loop_is_a_problem_not_a_traceback(repo) -> None:
    root = repo(**{"pod.yaml": POD, "services.yaml": SERVICE.format(vram=100), "modes.yaml": MODE})
    (root / "loop.yaml").symlink_to("loop.yaml")
    (problem,) = problems_of(root)
    assert problem == "specs/loop.yaml:1: cannot read the file: Too many levels of symbolic links"


def test_a_link_to_a_file_outside_the_repo_still_loads(repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared-modes.yaml"
    shared.write_text(MODE.lstrip("\n"))
    root = repo(**{"pod.yaml": POD, "services.yaml": SERVICE.format(vram=100)})
    (root / "modes.yaml").symlink_to(shared)
    assert problems_of(root) == []


def test_an_absurd_vram_figure_is_refused_at_its_line(repo) -> None:
    """`vram_mb: 99999999999999999999` used to validate, then plan a 20-digit shortfall."""
    root = repo(**{"pod.yaml": POD, "services.yaml": SERVICE.format(vram=99999999999999999999), "modes.yaml": MODE})
    (problem,) = problems_of(root)
    assert problem.startswith("specs/services.yaml:6: vram_mb: input should be less than or equal to")


def test_an_absurd_gpu_memory_is_refused_at_its_line(repo) -> None:
    pod = POD.replace("memory_mb: 24564", "memory_mb: 2456400000000")
    root = repo(**{"pod.yaml": pod, "services.yaml": SERVICE.format(vram=100), "modes.yaml": MODE})
    (problem,) = problems_of(root)
    assert problem.startswith("specs/pod.yaml:5: gpus[0].memory_mb: input should be less than or equal to")


def test_the_largest_gpus_made_are_still_accepted(repo) -> None:
    pod = POD.replace("memory_mb: 24564", "memory_mb: 262144")  # 256 GiB
    root = repo(**{"pod.yaml": pod, "services.yaml": SERVICE.format(vram=200000), "modes.yaml": MODE})
    assert problems_of(root) == []


def test_two_pods_on_this_machine_may_not_share_a_port(repo) -> None:
    """Two simulated (or local) pods run their services on this machine: the same port in both
    validated, then one start failed with "the process exited while starting"."""
    second = POD.replace("name: box", "name: box2").replace("host: sim", "host: local").replace("mode: m", "mode: m2")
    other = SERVICE.format(vram=100).replace("name: app", "name: other")
    root = repo(**{
        "pod.yaml": POD + "---\n" + second,
        "services.yaml": SERVICE.format(vram=100) + "---\n" + other,
        "modes.yaml": MODE + "---\n" + MODE.replace("name: m", "name: m2").replace("[app]", "[other]"),
    })
    assert problems_of(root) == [
        "specs/pod.yaml:11: pods box and box2 both run on this machine and both use port 40001 (app in pod box, "
        "other in pod box2); give one of the services another port, or run one pod elsewhere"
    ]
    (root / "services.yaml").write_text((SERVICE.format(vram=100) + "---\n" + other.replace("40001", "40002")).lstrip())
    assert problems_of(root) == []


def test_pods_elsewhere_may_use_the_same_port(repo) -> None:
    second = POD.replace("name: box", "name: box2").replace("host: sim", "host: ssh://root@192.0.2.1:22")
    root = repo(**{"pod.yaml": POD + "---\n" + second, "services.yaml": SERVICE.format(vram=100), "modes.yaml": MODE})
    assert problems_of(root) == []


def test_yes_or_on_for_a_number_is_refused_not_read_as_1(repo) -> None:
    """YAML 1.1 reads `port: yes` as true, and pydantic took true for 1: the service got port 1."""
    service = SERVICE.format(vram="on").replace("port: 40001", "port: yes") + "gpus: true\n"
    root = repo(**{"pod.yaml": POD, "services.yaml": service, "modes.yaml": MODE})
    why = "input should be a number, got true (YAML reads yes/no/on/off as true/false)"
    assert problems_of(root) == [
        f"specs/services.yaml:5: port: {why}",
        f"specs/services.yaml:6: vram_mb: {why}",
        f"specs/services.yaml:7: gpus: {why}",
    ]


def test_every_number_field_is_guarded_against_booleans() -> None:
    from gpumod.spec import models

    classes = [c for c in vars(models).values() if isinstance(c, type) and issubclass(c, models._Doc)]
    found = {name for c in classes for name, f in c.model_fields.items() if models._numeric(f.annotation)}
    assert found == set(models.NUMBER_FIELDS), "add new number fields to NUMBER_FIELDS"
