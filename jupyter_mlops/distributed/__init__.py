"""Distributed training from a cell on torchrun (``%%distributed``)."""
