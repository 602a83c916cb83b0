"""``gpumod prompt``: an OpenAI-API chat with a service, with file tools on the current folder.

    endpoint   the service's base URL and model id, from the specs (SSH pods: a port forward)
    client     the streamed tool loop (seams: the chunk stream, the event sink)
    tools      ls / read / glob / rg (and bash when allowed), confined to the folder
    session    conversations saved for ``-c``
    cli        the typer command and the console / JSON output
"""
