"""``%serve NAME@ALIAS --export kserve``: the manifest is read back by KServe's own SDK models.

The ``kserve`` SDK is heavy (kubernetes, grpc), so it lives in its own virtual environment,
``.venv-k8s`` (made by ``.ci/run``: kserve, kubeflow-training, kubernetes); this
file is also the validator it runs there (``python tests/test_serving_kserve.py MANIFEST``).
A manifest is valid when KServe's ``V1beta1InferenceService`` model builds from it (required
fields, types) and serializes back to a document holding every key and value it was given.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KSERVE_PYTHON = ROOT / ".venv-k8s" / "bin" / "python"


def validate(path: str) -> list[str]:
    """Run inside .venv-k8s: the problems KServe's models find in the manifest at ``path``."""
    import kubernetes.client
    import yaml
    from kserve import ApiClient, V1beta1InferenceService, constants

    document = yaml.safe_load(Path(path).read_text())
    problems = []
    api_version = f"{constants.KSERVE_GROUP}/{constants.KSERVE_V1BETA1_VERSION}"
    if document.get("apiVersion") != api_version:
        problems.append(f"apiVersion is {document.get('apiVersion')!r}, not {api_version!r}")
    if document.get("kind") != constants.KSERVE_KIND_INFERENCESERVICE:
        problems.append(f"kind is {document.get('kind')!r}")
    # KServe types its metadata as Kubernetes' V1ObjectMeta: Kubernetes' client reads that part.
    client = ApiClient()
    try:
        metadata = kubernetes.client.ApiClient()._ApiClient__deserialize(
            document.get("metadata"), "V1ObjectMeta"
        )
        spec = client._ApiClient__deserialize(document.get("spec"), "V1beta1InferenceServiceSpec")
        service = V1beta1InferenceService(
            api_version=document.get("apiVersion"),
            kind=document.get("kind"),
            metadata=metadata,
            spec=spec,
        )
    except (ValueError, TypeError) as exc:
        return [*problems, f"KServe refuses it: {exc}"]
    back = client.sanitize_for_serialization(service)
    return problems + [f"KServe does not read {where}" for where in lost(document, back)]


def lost(sent: Any, back: Any, where: str = "") -> list[str]:
    """Paths of ``sent`` that KServe's serialization of what it read does not give back (keys
    it does not know, values it converted); defaults it adds are not counted."""
    if isinstance(sent, dict):
        if not isinstance(back, dict):
            return [where or "the document"]
        return [p for k, v in sent.items() for p in lost(v, back.get(k), f"{where}.{k}")]
    return [] if sent == back else [f"{where} = {sent!r}"]


def run_validator(path: Path) -> subprocess.CompletedProcess[str]:
    assert KSERVE_PYTHON.exists(), f"{KSERVE_PYTHON} is missing: run .ci/run, which makes .venv-k8s"
    return subprocess.run(
        [str(KSERVE_PYTHON), __file__, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_export_is_an_inference_service_kserve_reads_back_whole(
    ip: Any, template_store: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    import yaml

    from jupyter_mlops import records
    from jupyter_mlops.serving.results import KServeExport
    from jupyter_mlops.tracking.client import mlflow_client
    from tests.serving_support import register_two_versions, store_settings

    settings = store_settings(template_store, tmp_path)
    monkeypatch.setenv("MLOPS_HOME", str(settings.home))
    register_two_versions(settings, "Churn Model")
    mlflow_client(settings.tracking_uri).set_registered_model_alias("Churn Model", "prod", "2")
    export = ip.run_line_magic("serve", '"Churn Model@prod" --export kserve')
    assert isinstance(export, KServeExport) and export.version == "2"
    document = yaml.safe_load(Path(export.path).read_text())
    model = document["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": records.KSERVE_FORMAT}
    assert model["storageUri"] == export.storage_uri
    version_folder = mlflow_client(settings.tracking_uri).get_model_version_download_uri(
        "Churn Model", "2"
    )
    assert Path(export.storage_uri) == Path(version_folder.removeprefix("file://"))
    assert (Path(export.storage_uri) / "MLmodel").is_file()
    assert document["metadata"]["name"] == "churn-model"
    checked = run_validator(Path(export.path))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The same validator refuses a misspelt field, a missing model format, a missing predictor.
    def refusal(change: Any) -> str:
        broken = yaml.safe_load(Path(export.path).read_text())
        change(broken["spec"])
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        checked = run_validator(path)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        return checked.stdout

    def misspell(spec: Any) -> None:
        spec["predictor"]["model"]["protocolVersoin"] = spec["predictor"]["model"].pop(
            "protocolVersion"
        )

    assert "protocolVersoin" in refusal(misspell)
    assert "model_format" in refusal(lambda spec: spec["predictor"]["model"].pop("modelFormat"))
    assert "predictor" in refusal(lambda spec: spec.pop("predictor"))


if __name__ == "__main__":
    found = validate(sys.argv[1])
    print("\n".join(found) or "valid")
    sys.exit(1 if found else 0)
