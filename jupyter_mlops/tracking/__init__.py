"""Experiment tracking on MLflow: ``%%track``, ``mlops.log``, ``%runs``, ``%compare``."""
