"""Known-model presets, shipped as YAML data (read with importlib.resources)."""
