"""The MCP server through FastMCP's own client, in memory, against the simulated pod (real
processes, real HTTP to the sim services): every tool and resource, the refusal of a mutating
tool without --allow-apply, a switch that converges the pod and edits only the `mode:` line with
progress notifications, an infeasible switch, errors as the CLI prints them, and the same
figures as `gpumod status -o json`."""

from __future__ import annotations

import json

import pytest
from fastmcp import Client
from mcp_helpers import CHANGE_TOOLS, READ_TOOLS, answer, changed_lines, refusal, spec_bytes

from gpumod.mcp import server as mcp_server
from gpumod.mcp.server import REFUSED, build_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POD = "sim-box"


async def test_every_read_tool_and_resource_answers_with_the_operations_json(sim) -> None:
    async with Client(build_server(sim.specs)) as c:
        assert {t.name for t in await c.list_tools()} == READ_TOOLS | CHANGE_TOOLS

        status = await answer(c, "gpu_mode_status")
        pod = status["pods"][POD]
        assert (pod["mode"], pod["reachable"], pod["changes_pending"]) == ("code", True, 2)
        assert [g["total_mb"] for g in pod["gpus"]] == [24564]
        assert {s["service"]: s["state"] for s in pod["services"]} == {"embedding-code": "absent", "glm-code": "absent"}

        verdict = await answer(c, "gpu_mode_verify")
        assert verdict["ok"] is False
        assert verdict["pods"][POD]["reasons"][0].startswith("2 change(s) pending: + start embedding-code")
        other = await answer(c, "gpu_mode_verify", mode="rag")
        assert "the specs put pod sim-box in mode code, not rag" in other["pods"][POD]["reasons"]

        fits = await answer(c, "simulate_mode", mode="rag")
        assert (fits["pod"], fits["fits"], fits["proposed"]["mode"]) == (POD, True, "rag")
        services = await answer(c, "simulate_mode", services=["embedding"], add=["chat"])
        assert services["fits"] and set(services["proposed"]["services"]) == {"embedding", "chat"}

        listed = await answer(c, "service_list")
        assert len(listed["services"]) == 7
        in_mode = await answer(c, "service_list", pod=POD)
        assert [s["name"] for s in in_mode["services"]] == ["embedding-code", "glm-code"]

        rows = (await answer(c, "service_status", service="glm-code"))["services"]
        assert [(r["pod"], r["state"], r["target"], r["vram_budget_mb"]) for r in rows] == [
            (POD, "absent", "active", 19100)
        ]

        plan = await answer(c, "plan")
        assert plan["changes"] == 2 and plan["unreachable"] == {}
        assert [(s["action"], s["service"]) for s in plan["pods"][POD]["steps"]] == [
            ("start", "embedding-code"), ("start", "glm-code"),
        ]
        last = json.loads((await c.read_resource("gpumod://plan/last"))[0].text)
        assert last["tool"] == "plan" and last["plan"]["fingerprint"] == plan["fingerprint"]

        model = await answer(c, "model_info", model="glm-code", hub=False)
        assert model["model"] == "mistralai/Devstral-Small-2-24B-Instruct" and model["hub"] is None
        assert [(s["name"], s["pods"], s["awake_mb"]) for s in model["services"]] == [("glm-code", [POD], 19100)]
        assert [p["pod"] for p in model["pods"]] == [POD]

        index = json.loads((await c.read_resource("gpumod://specs"))[0].text)
        assert index["files"] == [f"gpumod://specs/{n}" for n in ("modes.yaml", "pod.yaml", "services.yaml")]
        text = (await c.read_resource("gpumod://specs/pod.yaml"))[0].text
        assert text == (sim.specs / "pod.yaml").read_text()
        with pytest.raises(Exception, match="no spec file nope.yaml"):
            await c.read_resource("gpumod://specs/nope.yaml")

        # nothing ran yet: no log to read, said as the CLI says it
        text = await refusal(c, "service_logs", service="chat")
        assert text.startswith("error: no pod has a log of service chat")


async def test_the_last_plan_is_empty_before_any_tool_made_one(sim) -> None:
    async with Client(build_server(sim.specs)) as c:
        last = json.loads((await c.read_resource("gpumod://plan/last"))[0].text)
        assert last["plan"] is None and "call the plan tool" in last["note"]


async def test_mutating_tools_are_refused_without_allow_apply_and_touch_nothing(sim) -> None:
    before = spec_bytes(sim.specs)
    async with Client(build_server(sim.specs)) as c:
        for tool, args in (("gpu_mode_switch", {"mode": "rag"}), ("apply", {})):
            text = await refusal(c, tool, **args)
            assert REFUSED in text, text
        status = await answer(c, "gpu_mode_status")
    assert spec_bytes(sim.specs) == before
    assert {s["state"] for s in status["pods"][POD]["services"]} == {"absent"}
    assert sim.records() == []


async def test_a_switch_converges_the_pod_edits_only_the_mode_line_and_reports_progress(sim) -> None:
    before = spec_bytes(sim.specs)
    progress: list[tuple[float, str]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message or ""))

    async with Client(build_server(sim.specs, allow_apply=True)) as c:
        result = await c.call_tool("gpu_mode_switch", {"mode": "rag"}, progress_handler=on_progress)
        switch = result.structured_content
        assert (switch["pod"], switch["previous_mode"], switch["mode"], switch["changed"]) == (POD, "code", "rag", True)
        assert switch["apply"]["converged"] is True and switch["apply"]["problems"] == []
        assert switch["commit"] is None

        # git stays the truth: exactly one line of one file changed
        after = spec_bytes(sim.specs)
        assert {n for n in before if before[n] != after[n]} == {"pod.yaml"}
        assert changed_lines(before["pod.yaml"], after["pod.yaml"]) == [("mode: code", "mode: rag")]

        # one notification per step event, in order, with increasing progress values
        steps = switch["apply"]["steps"]
        assert steps and all(s["status"] == "ok" for s in steps)
        values = [v for v, _ in progress]
        assert values == sorted(set(values))
        messages = [m for _, m in progress]
        for s in steps:
            started = [m for m in messages if m.startswith(f"{POD}: ") and f" {s['action']} {s['service']}" in m]
            assert any(m.endswith(" …") for m in started), (s, messages)
            assert any(" … ok (" in m for m in started), (s, messages)
        assert any(m.startswith("plan: ") for m in messages)
        assert messages[-1].startswith("converged after"), messages

        verdict = await answer(c, "gpu_mode_verify", mode="rag")
        assert verdict["ok"] is True and verdict["pods"][POD]["reasons"] == []

        # the same figures as the CLI, for the same pod (one operations layer)
        assert await answer(c, "gpu_mode_status") == sim.status()

        logs = await answer(c, "service_logs", service="chat", lines=5)
        assert 0 < len(logs["pods"][POD]["lines"]) <= 5

        chat = (await answer(c, "service_status", service="chat"))["services"][0]
        assert chat["state"] == "running" and chat["vram_used_mb"] > 0

        again = await answer(c, "apply")
        assert again["converged"] is True and again["steps"] == [] and again["plans"] == []
        last = json.loads((await c.read_resource("gpumod://plan/last"))[0].text)
        assert last["tool"] == "apply" and last["plan"]["changes"] == 0


async def test_an_infeasible_switch_returns_the_gpu_the_mib_over_and_alternatives_and_edits_nothing(sim) -> None:
    before = spec_bytes(sim.specs)
    async with Client(build_server(sim.specs, allow_apply=True)) as c:
        text = await refusal(c, "gpu_mode_switch", mode="everything")
    lines = text.splitlines()
    assert lines[0].startswith("pod sim-box: GPU 0 (NVIDIA GeForce RTX 4090) needs ")
    assert lines[0].endswith(" MiB over") and int(lines[0].split(": ")[-1].split()[0]) > 0
    assert "  alternatives:" in lines
    assert any(line.startswith("    - ") for line in lines[lines.index("  alternatives:"):])
    assert "error: the desired state does not fit the GPUs of pod(s) sim-box; nothing was touched" in lines
    assert lines[-1].startswith("hint: ")
    assert spec_bytes(sim.specs) == before
    assert sim.records() == []


async def test_errors_come_back_with_the_text_the_cli_prints(sim) -> None:
    (sim.specs / "broken.yaml").write_text("kind: Service\nname: x\ncolour: red\n")
    cli = sim.run("status", str(sim.specs))
    assert cli.returncode == 2
    async with Client(build_server(sim.specs)) as c:
        text = await refusal(c, "gpu_mode_status")
        assert text == "\n".join(line.rstrip() for line in cli.stderr.strip().splitlines())
        assert "broken.yaml:3: unknown key 'colour'" in text
        (sim.specs / "broken.yaml").unlink()
        text = await refusal(c, "gpu_mode_status", pod="nope")
        assert text == "error: unknown pod(s): nope\nhint: pods in these specs: sim-box"
        text = await refusal(c, "gpu_mode_verify", mode="nope")
        assert text.startswith("error: mode 'nope' is not defined")


async def test_a_bug_is_a_tool_error_without_a_traceback(sim, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(mcp_server.ops_status, "status", broken)
    async with Client(build_server(sim.specs)) as c:
        text = await refusal(c, "gpu_mode_status")
    assert text.startswith("error: internal error in gpumod: RuntimeError: boom")
