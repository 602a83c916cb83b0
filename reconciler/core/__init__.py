"""The pure core: desired/observed values, VRAM footprints and plan(). No I/O here."""
