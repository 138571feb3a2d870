"""Lineage from data to run to model to drift report to gate decision (``%lineage``)."""
