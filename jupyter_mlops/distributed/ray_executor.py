"""Ray executor (placeholder until the TorchTrainer path lands)."""
