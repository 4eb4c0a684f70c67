"""Skiff: a small-footprint, hackable Kubernetes-compatible control plane."""

__version__ = "0.1.0"
