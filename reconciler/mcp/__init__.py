"""``gpumod mcp``: the operations as MCP tools and resources, for AI agents (Claude Code and others).

A face, like the CLI and the TUI: ``server`` builds the FastMCP server over ``gpumod.ops`` (it
imports no other face: ``.importlinter``); ``cli`` is the ``gpumod mcp DIR`` command that runs
it over stdio or streamable HTTP. Nothing is imported here, so ``gpumod --help`` never pays for
``fastmcp``: the command imports it when it runs.
"""
