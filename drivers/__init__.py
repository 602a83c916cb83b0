"""Service drivers: how to start, stop, sleep, wake and probe each kind of model server."""
