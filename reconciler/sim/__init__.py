"""The simulated GPU pod: a sim inference server and an nvidia-smi stand-in."""
