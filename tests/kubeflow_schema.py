"""Check a PyTorchJob manifest against Kubeflow's own models (run with .venv-k8s's python).

``python tests/kubeflow_schema.py MANIFEST.yaml``: the manifest is deserialised into the
``kubeflow-training`` SDK's ``KubeflowOrgV1PyTorchJob`` (generated from the training operator's
OpenAPI schema; nested pod templates are the Kubernetes client's ``V1PodTemplateSpec``) with
client-side validation on, then serialised back. Any field the schema lacks (a misspelling is
dropped by the models), a wrong type or a missing required field makes the two differ or raise;
the script prints what differs and exits 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml
from kubeflow.training import models
from kubeflow.training.api_client import ApiClient


class Response:
    def __init__(self, data: str) -> None:
        self.data = data


def differences(given: Any, back: Any, path: str = "") -> list[str]:
    if isinstance(given, dict) and isinstance(back, dict):
        found = []
        for key in sorted(set(given) | set(back)):
            if key not in back:
                found.append(f"{path}.{key}: not in the PyTorchJob schema")
            elif key not in given:
                continue  # defaults the models add
            else:
                found += differences(given[key], back[key], f"{path}.{key}")
        return found
    if isinstance(given, list) and isinstance(back, list) and len(given) == len(back):
        return [
            d
            for i, (a, b) in enumerate(zip(given, back, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if given == back else [f"{path}: {given!r} came back as {back!r}"]


def main(path: str) -> int:
    with open(path) as f:
        manifest = yaml.safe_load(f)
    client = ApiClient()
    job = client.deserialize(Response(json.dumps(manifest)), "KubeflowOrgV1PyTorchJob")
    assert isinstance(job, models.KubeflowOrgV1PyTorchJob)
    back = client.sanitize_for_serialization(job)
    found = differences(manifest, back)
    for problem in found:
        print(problem)
    replicas = job.spec.pytorch_replica_specs
    print(json.dumps({"ok": not found, "replicas": sorted(replicas), "kind": job.kind}))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
