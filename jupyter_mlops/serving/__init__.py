"""Serving: real-time endpoints that follow a model alias and log their traffic (``%serve``).

``server`` is the endpoint process (MLflow's scoring protocol), ``launch`` starts and stops it,
``deployments`` records where endpoints run, ``traffic`` is the inference log, ``bench`` the load
generator and ``kserve`` the cluster export. Nothing here imports IPython.
"""
