"""Kubernetes executor (placeholder until the PyTorchJob export lands)."""
