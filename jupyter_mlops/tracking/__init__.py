"""Experiment tracking on a real MLflow store (``%%track``, ``mlops.log``, ``%runs``, ``%compare``)."""
