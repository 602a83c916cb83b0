"""The operations layer: what every face (CLI, MCP server, TUI) calls, so they can never disagree.

Each operation takes a spec directory and plain arguments, prints nothing, reports progress as
typed events through one ``Reporter`` (``gpumod.ops.events``: a single ``event(e)`` method) and
returns a frozen, typed result whose ``to_json()`` is the JSON shape every face returns. Nothing
here imports a face (cli, views, typer, rich): ``.importlinter`` holds that line.

    status.status          -> StatusResult (PodStatus / ServiceStatus rows, every figure)
    plan.plan, plan.save   -> PlanResult
    apply.apply / down / apply_saved -> ApplyResult (its plans and step outcomes)
    simulate.simulate      -> SimulationResult
    logs.logs              -> LogsResult (follow: a callback per line)
    unlock.unlock          -> UnlockResult
    validate.validate      -> ValidateResult
    verify.verify          -> VerifyResult (is each pod converged to its mode, and why not)
    watch.watch            -> runs until stopped; every pass reported as events
    switch_mode.switch_mode / start_service / stop_service -> SwitchResult (edit, commit, apply)
    inventory.mode_list / service_list / service_status / presets
"""
