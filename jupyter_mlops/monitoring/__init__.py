"""Monitoring served models: ``%monitor`` windows, ``mlops.feedback``, ``%schedule``, retraining."""
