"""gpumod: GitOps for GPU model services, without Kubernetes."""

__version__ = "0.2.0"
