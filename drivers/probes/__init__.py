"""Probes: the text a pod prints (nvidia-smi CSV, ...) turned into values by pure parsers."""
