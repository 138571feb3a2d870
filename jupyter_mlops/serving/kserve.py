"""``%serve NAME@ALIAS --export kserve``: a KServe ``InferenceService`` for the exact version.

KServe serves MLflow models with MLServer (``modelFormat: mlflow``, the V2 inference protocol);
``storageUri`` is where the version's artifacts are. An alias moves, a manifest should not: the
version the alias names at export time is written, and the alias is kept as an annotation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import records
from ..config import Settings
from ..errors import MLOpsUsageError
from .results import KServeExport

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
PROTOCOL = "v2"  # MLServer speaks the V2 (Open Inference) protocol
REMOTE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://", "hdfs://", "oci://")


def service_name(model: str) -> str:
    """A DNS-1123 label (what Kubernetes accepts as a name) from a model name."""
    label = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = f"model-{label}".strip("-")
    return label[:63].rstrip("-")


def manifest(model: str, version: str, alias: str | None, storage_uri: str) -> dict[str, Any]:
    annotations = {
        f"{records.KSERVE_ANNOTATION_PREFIX}model": model,
        f"{records.KSERVE_ANNOTATION_PREFIX}version": str(version),
    }
    if alias:
        annotations[f"{records.KSERVE_ANNOTATION_PREFIX}alias"] = alias
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": service_name(model), "annotations": annotations},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": records.KSERVE_FORMAT},
                    "protocolVersion": PROTOCOL,
                    "storageUri": storage_uri,
                }
            }
        },
    }


def export_kserve(settings: Settings, ref: str, path: str | Path | None = None) -> KServeExport:
    """Write the manifest for the version ``ref`` names now; returns where and what."""
    import yaml

    from ..registry.models import resolve_version, split_ref
    from ..tracking.client import mlflow_client

    client = mlflow_client(settings.tracking_uri)
    found = resolve_version(client, ref)
    _, _, alias = split_ref(ref)
    storage = client.get_model_version_download_uri(found.name, found.version)
    if storage.startswith("file://"):
        storage = storage.removeprefix("file://")
    local = not storage.startswith(REMOTE_SCHEMES)
    document = manifest(found.name, str(found.version), alias, storage)
    target = (
        Path(path)
        if path
        else (
            settings.home
            / records.DEPLOYMENTS_DIRNAME
            / records.KSERVE_FILENAME.format(name=service_name(found.name), version=found.version)
        )
    )
    if target.is_dir():
        raise MLOpsUsageError(f"{target} is a folder; give a file name ending in .yaml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return KServeExport(
        path=str(target),
        model=found.name,
        version=str(found.version),
        storage_uri=storage,
        manifest=document,
        local_storage=local,
    )
