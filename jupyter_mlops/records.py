"""Every name we record in MLflow and on disk, defined once, and the small readers of them.

Writers (``%%track``, ``%snapshot``, ``%register``, ``%drift``, ``%promote``/``%gate``) and readers
(``%lineage``, the panel's server, ``%runs``) import their tag names, artifact paths and
dataset-input fields from here, as MLflow keeps its own in ``mlflow/utils/mlflow_tags.py``.
A string literal naming one of these records belongs in this module and nowhere else.

Nothing heavy is imported: the readers work on MLflow entities handed to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# --- run tags (``%%track`` / ``mlops.track``) --------------------------------------------------
TAG_PREFIX = "mlops."
TAG_RUN_KEY = "mlops.run_key"  # notebook + cell: what a re-run of the cell replaces
TAG_SUPERSEDED_BY = "mlops.superseded_by"  # on the run a re-run replaced: the new run's id
TAG_REPLACES = "mlops.replaces"  # on the re-run: the id of the run it replaced
TAG_ERROR = "mlops.error"  # why a run failed (first line, clipped)
TAG_OWNER = "mlops.owner"  # the process that holds the run open
TAG_NOTEBOOK = "mlops.notebook"
TAG_NOTEBOOK_SOURCE = "mlops.notebook_source"
TAG_CELL_ID = "mlops.cell_id"
TAG_GIT_DIRTY = "mlops.git.dirty"
TAG_PYTHON = "mlops.python"
TAG_PACKAGE_PREFIX = "mlops.pkg."  # + package name: its version
TAG_GPUS = "mlops.gpus"
TAG_BATCH_PARAMETERS = "mlops.batch_parameters"  # set by lineage.batch on papermill runs
TRACKED_TAGS = (TAG_RUN_KEY, TAG_NOTEBOOK_SOURCE)  # any of them: opened by %%track
HIDDEN_RUN_TAGS = ("mlflow.log-model.history",)  # MLflow's bulky tag, not shown in the panel

# --- run artifacts --------------------------------------------------------------------------------
CELL_ARTIFACT = "cell.py"  # the cell's source as written
ERROR_ARTIFACT = "error.txt"  # the full traceback of a failed run

# --- model version tags (``%register``) -----------------------------------------------------------
TAG_RUN_ID = "mlops.run_id"
TAG_SNAPSHOTS = "mlops.snapshots"  # comma-separated input snapshot REFs of the version's run
TAG_SNAPSHOT_IDS = "mlops.snapshot_ids"  # their content ids, in the same order
TAG_FLAVOR = "mlops.flavor"
TAG_REGISTERED_BY = "mlops.registered_by"

# --- gate decisions (``%promote`` / ``%gate``) ------------------------------------------------
TAG_GATE_PREFIX = "mlops.gate."  # + alias: the latest decision for it (JSON summary)
TAG_GATE_LAST = TAG_GATE_PREFIX + "last"  # the latest decision on the version (or run)
GATES_FOLDER = "gates"  # run artifacts: gates/<stem>.json, one per decision
REPORTS_DIRNAME = "reports"  # <home>/reports/<stem>.json + .xml: an export for CI, never read
JUNIT_CLASS_PREFIX = TAG_GATE_PREFIX  # JUnit testcase classname: mlops.gate.<model>

# --- drift reports (``%drift``) -------------------------------------------------------------------
DRIFT_FOLDER = "drift"  # run artifacts: drift/<reference>_vs_<current>.html and .json
TAG_DRIFT_PREFIX = "mlops.drift."
TAG_DRIFT_REFERENCE = TAG_DRIFT_PREFIX + "reference"
TAG_DRIFT_CURRENT = TAG_DRIFT_PREFIX + "current"
TAG_DRIFT_DRIFTED = TAG_DRIFT_PREFIX + "drifted"
TAG_DRIFT_BROKEN = TAG_DRIFT_PREFIX + "broken"
TAG_DRIFT_MODEL = TAG_DRIFT_PREFIX + "model"  # on the run: the model version a report checked

# --- batch scoring (``%score``) ------------------------------------------------------------------
TAG_SCORE_MODEL = "mlops.score.model"  # on a scoring run: NAME/VERSION of the model that scored
TAG_SCORE_DATA = "mlops.score.data"  # on a scoring run: what it scored (snapshot REF, path, type)

# --- monitoring (``%monitor``, ``mlops.feedback``, ``%schedule``) --------------------------------
MONITOR_EXPERIMENT = "monitoring"  # where %monitor opens its run when no run is active
MONITOR_FOLDER = "monitor"  # run artifacts: monitor/<model>.html and .json
TAG_MONITOR_PREFIX = "mlops.monitor."
TAG_MONITOR_LAST = TAG_MONITOR_PREFIX + "last"  # on the model version: the latest result (JSON)
TAG_MONITOR_MODEL = TAG_MONITOR_PREFIX + "model"  # on the monitoring run: NAME@ALIAS
TAG_MONITOR_TRIGGER = TAG_MONITOR_PREFIX + "trigger"  # on a retraining run: the monitoring run
MONITORING_DIRNAME = "monitoring"  # <home>/monitoring/
MONITOR_LATEST_DIRNAME = "latest"  # <home>/monitoring/latest/<model>.json: GET monitor's answer
FEEDBACK_DIRNAME = "feedback"  # <home>/monitoring/feedback/<model>/<stamp>-<id>.parquet
FEEDBACK_LABEL = "label"  # the ground-truth column of the feedback files
FEEDBACK_RECEIVED = "received_at"
RETRAIN_FOLDER = "retrain"  # monitoring run artifacts: retrain/<notebook>.ipynb (executed)
RETRAIN_PARAMETERS = ("window", "reason", "trigger_run")  # papermill parameters of --retrain
SCHEDULES_DB = "schedules.sqlite"  # <home>/schedules.sqlite: APScheduler's job store
SCHEDULE_EXPERIMENT = "schedules"  # one run per scheduled execution
TAG_SCHEDULE_ID = "mlops.schedule.id"
TAG_SCHEDULE_NOTEBOOK = "mlops.schedule.notebook"
TAG_SCHEDULE_OUTCOME = "mlops.schedule.outcome"  # succeeded, or failed: first line of the error
SCHEDULE_OUTPUT_FOLDER = "schedule"  # run artifacts: schedule/<notebook>.ipynb (executed)
TAG_SCHEDULE_JOB = "mlops.schedule.job"  # the jupyter-scheduler job an execution run records
SCHEDULER_JOB_TAG = "jupyter-mlops"  # jupyter-scheduler tag on the job definitions %schedule made
SCHEDULER_HOME_TAG = "jupyter-mlops-home:"  # + the store folder: whose runs record its jobs

# --- snapshot dataset inputs (``%snapshot`` inside a run) -----------------------------------------
INPUT_CONTEXT = "training"  # value of MLflow's mlflow.data.context input tag
INPUT_TAG_OPERATION = "snapshot.operation"  # saved or loaded
INPUT_TAG_REF = "snapshot.ref"
INPUT_TAG_ID = "snapshot.id"
RUN_TAG_SNAPSHOT_PREFIX = "snapshot."  # + snapshot name on the run: "REF#short id"
PROFILE_ROWS = "num_rows"  # dataset profile fields
PROFILE_ELEMENTS = "num_elements"
PROFILE_FILES = "files"
PROFILE_BYTES = "bytes"
SCHEMA_COLUMNS = "snapshot_columns"  # dataset schema: [{"name", "type"}]
DIGEST_PREFIX = "b3:"
DIGEST_HEX = 32  # MLflow stores at most 36 characters of digest: "b3:" + 128 bits

# --- snapshot store folders (``snapshots.repository``, ``snapshots.packs``) -----------------------
SNAPSHOT_OBJECTS = "objects"  # objects/<2 hex>/<rest>: loose objects (over 4 MB, or pre-packs)
SNAPSHOT_MANIFESTS = "manifests"  # manifests/<snapshot id>.json
SNAPSHOT_PACKS = "packs"  # packs/<pack id>: many objects back to back, read by range
SNAPSHOT_PACK_INDEXES = "pack-indexes"  # pack-indexes/<pack id>.json: object id -> offset, length

# --- checks inside a recorded decision (see registry.results.Check) -------------------------------
CHECK_KIND_REQUIRE = "require"
CHECK_KIND_VERSUS = "versus"
CHECK_KIND_DRIFT = "drift"
CHECK_KIND_ALIAS = "alias"
CHECK_KIND_CONTRACT = "contract"  # a data contract's rule (%expect check, --expect, %snapshot)
CHECK_KIND_SKEW = "skew"  # a %skew --fail-on condition

# --- data contracts (``%expect``) -------------------------------------------------------------
CONTRACTS_DIRNAME = "contracts"  # <home>/contracts/<NAME>/v<N>.json, one file per version
SNAPSHOT_TAG_CONTRACT = "contract"  # snapshot tag of a version saved with --allow-violations

# --- feature functions (``%register --features``) ---------------------------------------------
TAG_FEATURES = "mlops.features"  # model version: the feature function's qualified name
TAG_FEATURES_HASH = "mlops.features.sha256"  # ...and the SHA-256 of its source
FEATURES_ARTIFACT = "features.py"  # in the model folder: the function's source as written
CHECK_KIND_MONITOR = "monitor"

# --- serving (``%serve``): endpoints, their inference log, their responses --------------------
DEPLOYMENTS_DIRNAME = "deployments"  # <home>/deployments/<name>/record.json + stats-<pid>.json
DEPLOYMENT_RECORD = "record.json"  # what %serve started: model, alias, url, pid, options
DEPLOYMENT_STATS_PREFIX = "stats-"  # + worker pid + ".json": live counters of one worker
DEPLOYMENT_LOG = "server.log"  # the endpoint's stdout/stderr
TRAFFIC_DIRNAME = "traffic"  # <home>/traffic/<model>/alias=<alias>/day=<YYYY-MM-DD>/*.parquet
TRAFFIC_ALIAS_PREFIX = "alias="
TRAFFIC_DAY_PREFIX = "day="
TRAFFIC_NO_ALIAS = "-"  # folder of traffic written without an alias
TRAFFIC_REQUEST_ID = "request_id"  # inference log columns, in this order, then inputs, ...
TRAFFIC_TIMESTAMP = "timestamp"
TRAFFIC_MODEL = "model"
TRAFFIC_VERSION = "version"
TRAFFIC_LATENCY_MS = "latency_ms"
TRAFFIC_STATUS = "status"
TRAFFIC_FIXED_COLUMNS = (
    TRAFFIC_REQUEST_ID,
    TRAFFIC_TIMESTAMP,
    TRAFFIC_MODEL,
    TRAFFIC_VERSION,
    TRAFFIC_LATENCY_MS,
    TRAFFIC_STATUS,
)
TRAFFIC_PREDICTION = "prediction"  # a single output; several: prediction.<name>
TRAFFIC_FEATURE_PREFIX = "feature."  # features a model computed: feature.<name>
HEADER_MODEL_VERSION = "X-MLOps-Model-Version"  # on every response: the version that answered
HEADER_REQUEST_ID = "X-MLOps-Request-Id"  # on every response: the id logged for the request
KSERVE_FORMAT = "mlflow"  # modelFormat of the InferenceService we export
KSERVE_ANNOTATION_PREFIX = "jupyter-mlops/"  # + model, version, alias on the exported manifest
KSERVE_FILENAME = "{name}-v{version}.kserve.yaml"  # written under <home>/deployments/


def mlflow_digest(snapshot_id: str) -> str:
    """The dataset digest a snapshot's input carries (searchable: ``dataset.digest = '...'``)."""
    return f"{DIGEST_PREFIX}{snapshot_id[:DIGEST_HEX]}"


def run_snapshot_tag(name: str) -> str:
    return f"{RUN_TAG_SNAPSHOT_PREFIX}{name}"


def gate_tag(alias: str) -> str:
    return f"{TAG_GATE_PREFIX}{alias}"


def package_tag(name: str) -> str:
    return f"{TAG_PACKAGE_PREFIX}{name}"


# --- typed readers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotInput:
    """One snapshot a run read or wrote, as its dataset input records it."""

    id: str
    ref: str
    operation: str  # saved, loaded, or "input" for a dataset logged by other code
    rows: int | None = None
    columns: int | None = None
    files: int | None = None

    @property
    def name(self) -> str:
        return self.ref.partition("@")[0]


def snapshot_inputs(run: Any) -> list[SnapshotInput]:
    """The snapshots among a run's dataset inputs (other datasets are ignored), first use first."""
    found: dict[str, SnapshotInput] = {}
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in dataset_input.tags}
        dataset = dataset_input.dataset
        snapshot_id = tags.get(INPUT_TAG_ID)
        if snapshot_id is None:
            continue
        profile = parse_json(dataset.profile)
        schema = parse_json(dataset.schema)
        columns = schema.get(SCHEMA_COLUMNS) if isinstance(schema, dict) else None
        entry = SnapshotInput(
            id=snapshot_id,
            ref=tags.get(INPUT_TAG_REF, dataset.name),
            operation=tags.get(INPUT_TAG_OPERATION, "input"),
            rows=profile.get(PROFILE_ROWS) if isinstance(profile, dict) else None,
            columns=len(columns) if isinstance(columns, list) else None,
            files=profile.get(PROFILE_FILES) if isinstance(profile, dict) else None,
        )
        known = found.get(entry.ref)
        if known is None:
            found[entry.ref] = entry
        elif known.operation != "saved" and entry.operation == "saved":
            found[entry.ref] = entry  # saved in the run wins over a later load
    return list(found.values())


def tag_snapshots(version: Any) -> tuple[list[str], list[str]]:
    """(REFs, ids) of the input snapshots ``%register`` recorded on a model version."""
    tags = version.tags or {}
    refs = [r for r in tags.get(TAG_SNAPSHOTS, "").split(",") if r]
    ids = [i for i in tags.get(TAG_SNAPSHOT_IDS, "").split(",") if i]
    return refs, ids


def is_tracked(run: Any) -> bool:
    """Opened by ``%%track`` / ``mlops.track`` (a plain MLflow run has none of our tags)."""
    return any(tag in run.data.tags for tag in TRACKED_TAGS)


def has_drift(tags: dict[str, str]) -> bool:
    return any(k.startswith(TAG_DRIFT_PREFIX) for k in tags)


def parse_json(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}


def drift_inputs(check: dict[str, Any]) -> tuple[str, str] | None:
    """(reference, current) labels of a recorded drift check, from its structured fields."""
    inputs = check.get("inputs")
    if check.get("kind") != CHECK_KIND_DRIFT or not isinstance(inputs, list | tuple):
        return None
    if len(inputs) != 2:
        return None
    return str(inputs[0]), str(inputs[1])
