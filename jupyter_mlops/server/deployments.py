"""The panel's Deployments section: the store's endpoints, and stopping one (``%serve stop``)."""

from __future__ import annotations

from ..config import Settings
from .models import DeploymentInfo, DeploymentList


def deployment_list(settings: Settings) -> DeploymentList:
    """Every endpoint recorded in the store, with its live counters (nothing is created)."""
    from ..serving.deployments import list_deployments

    return DeploymentList([DeploymentInfo.of(d) for d in list_deployments(settings)])


def stop_deployment(settings: Settings, name: str) -> DeploymentList:
    """Stop the endpoint ``name`` as ``%serve stop NAME`` does; answers the list after it."""
    from ..serving.launch import stop

    stop(settings, name)
    return deployment_list(settings)
