"""Walk the chain snapshot -> run -> model version -> drift reports -> gate decisions.

From any starting point the walk goes both ways: up to what the object came from (a model's run
and that run's input snapshots) and down to what it led to (the runs and models that used a
snapshot, a model's drift reports and gate decisions). A drift report belongs to a model when it
was logged in the model's run, or when it compared one of the model's input snapshots (a
monitoring run: ``%drift train@v1 prod`` inside ``%%track``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import records as names
from ..config import Settings
from ..errors import MLOpsNotFound, MLOpsUsageError
from ..registry.history import version_decisions
from ..tracking.client import mlflow_client
from . import records
from .graph import Lineage, LineageBuilder, Node

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RUN_ID = re.compile(r"[0-9a-f]{32}")
RELATIONS = {"saved": "saved in", "loaded": "loaded by"}


def snapshot_key(snapshot_id: str) -> str:
    return f"snapshot:{snapshot_id}"


def run_key(run_id: str) -> str:
    return f"run:{run_id}"


def model_key(name: str, version: int) -> str:
    return f"model:{name}/{version}"


class Walker:
    """One walk over one store; remembers what it visited so shared nodes are read once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: MlflowClient = mlflow_client(settings.tracking_uri)
        self.graph = LineageBuilder()
        self.inputs: dict[str, list[records.SnapshotInput]] = {}  # run id -> its snapshots
        self.run_names: dict[str, str] = {}
        self._runs_done: set[str] = set()
        self._models_done: set[str] = set()
        self._upstream_done: set[str] = set()  # training runs walked from a scoring run
        self._users: dict[str, list[Any]] = {}
        self._experiments: dict[str, str] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self.decisions: dict[str, dict[str, Any]] = {}  # gate node key -> the recorded decision

    # --- nodes -----------------------------------------------------------------------------
    def snapshot_node(self, entry: records.SnapshotInput) -> str:
        if entry.rows is not None:
            shape = f"{entry.rows:,} rows x {entry.columns or 0} columns"
        elif entry.files is not None:
            shape = f"{entry.files} files"
        else:
            shape = "contents unknown"
        return self.graph.add(
            Node(
                snapshot_key(entry.id),
                "snapshot",
                entry.ref,
                f"{shape}, id {entry.id[:8]}",
                {"id": entry.id, "ref": entry.ref, "rows": entry.rows, "columns": entry.columns},
            )
        )

    def run_node(self, run: Any) -> str:
        info, tags = run.info, run.data.tags
        name = info.run_name or info.run_id
        self.run_names[info.run_id] = name
        if info.experiment_id not in self._experiments:
            self._experiments[info.experiment_id] = self.client.get_experiment(
                info.experiment_id
            ).name
        experiment = self._experiments[info.experiment_id]
        detail = f"id {info.run_id}, {info.status}, experiment {experiment!r}"
        if tags.get(names.TAG_SUPERSEDED_BY):
            detail += ", superseded by a re-run"
        if not records.is_tracked(run):
            detail += ", not a %%track run"
        if "distributed.world_size" in run.data.params:
            detail += f", {run.data.params['distributed.world_size']} ranks"
        return self.graph.add(
            Node(
                run_key(info.run_id),
                "run",
                name,
                detail,
                {
                    "run_id": info.run_id,
                    "experiment": experiment,
                    "status": info.status,
                    "notebook": tags.get(names.TAG_NOTEBOOK),
                    "cell_id": tags.get(names.TAG_CELL_ID),
                    "params": dict(sorted(run.data.params.items())),
                    "metrics": dict(sorted(run.data.metrics.items())),
                },
                order=f"{info.start_time or 0:020d}",
            )
        )

    def model_node(self, version: Any) -> str:
        number = int(version.version)
        if version.name not in self._aliases:
            self._aliases[version.name] = records.aliases_of(self.client, version.name)
        aliases = sorted(a for a, v in self._aliases[version.name].items() if v == number)
        tags = version.tags or {}
        flavor = tags.get(names.TAG_FLAVOR, "model")
        detail = flavor + (f", aliases: {', '.join(aliases)}" if aliases else "")
        sha = tags.get(names.TAG_FEATURES_HASH, "")
        if names.TAG_FEATURES in tags:  # %register --features: the feature code it carries
            detail += f", features {tags[names.TAG_FEATURES]} (sha256 {sha[:12]})"
        return self.graph.add(
            Node(
                model_key(version.name, number),
                "model",
                f"{version.name}/{number}",
                detail,
                {
                    "name": version.name,
                    "version": number,
                    "run_id": version.run_id,
                    "aliases": aliases,
                    **(
                        {"features": tags[names.TAG_FEATURES], "features_sha256": sha}
                        if names.TAG_FEATURES in tags
                        else {}
                    ),
                },
            )
        )

    def drift_node(self, run: Any, path: str, report: dict[str, Any]) -> str:
        return self.add_drift(
            f"drift:{run.info.run_id}:{path}",
            report,
            f"in run {run.info.run_name or run.info.run_id!r}",
            {"run_id": run.info.run_id, "artifact": path},
            f"{run.info.start_time or 0:020d}",
        )

    def add_drift(
        self, key: str, report: dict[str, Any], where: str, attrs: dict[str, Any], order: str
    ) -> str:
        reference = str(report.get("reference", {}).get("label", "reference"))
        current = str(report.get("current", {}).get("label", "current"))
        share = float(report.get("share_drifted") or 0.0)
        verdict = "DRIFTED" if report.get("drifted") else "no dataset drift"
        detail = (
            f"{verdict}: {report.get('n_drifted', 0)} of {report.get('n_columns', 0)} columns "
            f"(share {share:.2f}), {where}"
        )
        attrs = {
            **attrs,
            "reference": reference,
            "current": current,
            "share_drifted": share,
            "drifted": bool(report.get("drifted")),
        }
        return self.graph.add(
            Node(key, "drift", f"{reference} vs {current}", detail, attrs, order=order)
        )

    def checked_drift_node(self, model: str, tag: str, summary: dict[str, Any]) -> str:
        """A ``%drift --model`` check: the logged report when its run has it, else the tag."""
        run = self.get_run(str(summary["run_id"])) if summary.get("run_id") else None
        if run is not None:
            for path, report in records.drift_reports(self.client, run):
                if path.startswith(f"{summary.get('artifact')}."):
                    return self.drift_node(run, path, report)
        return self.add_drift(
            f"drift:{model}:{tag}", summary, "recorded on the model", {}, str(summary.get("at"))
        )

    def gate_node(self, decision: dict[str, Any], where: str) -> str:
        self.decisions[f"gate:{where}"] = decision
        checks = decision.get("checks") or []
        passed = sum(1 for c in checks if c.get("passed"))
        verdict = "PASSED" if decision.get("passed") else "FAILED"
        detail = (
            f"{decided_at(decision.get('at'))}{verdict}, {decision.get('decision')}: "
            f"{passed} of {len(checks)} checks passed"
        )
        return self.graph.add(
            Node(
                f"gate:{where}",
                "gate",
                str(decision.get("subject", "gate")),
                detail,
                {
                    "decision": decision.get("decision"),
                    "passed": bool(decision.get("passed")),
                    "at": decision.get("at"),
                    "model": decision.get("model"),
                    "version": decision.get("version"),
                    "alias": decision.get("alias"),
                    "run_id": decision.get("run_id"),
                    "checks": [
                        {"name": c.get("name"), "passed": bool(c.get("passed"))} for c in checks
                    ],
                },
                order=str(decision.get("at", "")),
            )
        )

    # --- reading the store -----------------------------------------------------------------
    def run_inputs(self, run: Any) -> list[records.SnapshotInput]:
        run_id = run.info.run_id
        if run_id not in self.inputs:
            self.inputs[run_id] = records.snapshot_inputs(run)
        return self.inputs[run_id]

    def users_of(self, snapshot_id: str) -> list[Any]:
        if snapshot_id not in self._users:
            self._users[snapshot_id] = records.runs_using(self.client, snapshot_id)
        return self._users[snapshot_id]

    def get_run(self, run_id: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            return None

    # --- the walk --------------------------------------------------------------------------
    def upstream_of_run(self, run: Any) -> str:
        key = self.run_node(run)
        inputs = self.run_inputs(run)
        for entry in inputs:
            self.graph.link(
                self.snapshot_node(entry), key, RELATIONS.get(entry.operation, "input of")
            )
        if not inputs:
            self.graph.note(
                f"run {run.info.run_name or run.info.run_id!r} recorded no input snapshots"
            )
        scored_with = run.data.tags.get(names.TAG_SCORE_MODEL)
        if scored_with:
            self.link_scoring(run, key, scored_with)
        trigger = run.data.tags.get(names.TAG_MONITOR_TRIGGER)  # a %monitor --retrain run
        monitor = self.get_run(trigger) if trigger else None
        if monitor is not None:
            self.graph.link(self.run_node(monitor), key, "triggered")
        return key

    def link_scoring(self, run: Any, key: str, pinned: str) -> None:
        """A ``%score`` run: its data -> the model version -> its predictions, and the model's
        own upstream (training run and data)."""
        version = records.model_version(self.client, pinned)
        if version is None:
            self.graph.note(f"run {run.info.run_id} scored with {pinned}, no longer registered")
            return
        model = self.model_node(version)
        self.graph.link(model, key, "scored in")
        for entry in self.run_inputs(run):
            if entry.operation == "saved":
                self.graph.link(model, self.snapshot_node(entry), "predicted")
            else:
                self.graph.link(self.snapshot_node(entry), model, "scored by")
        training = self.get_run(version.run_id) if version.run_id else None
        if training is not None and run_key(training.info.run_id) not in self._upstream_done:
            self._upstream_done.add(run_key(training.info.run_id))
            self.graph.link(self.upstream_of_run(training), model, "registered")

    def downstream_of_run(self, run: Any) -> None:
        """Drift reports and run gates logged to the run, and the models registered from it."""
        run_id = run.info.run_id
        if run_id in self._runs_done:
            return
        self._runs_done.add(run_id)
        key = self.run_node(run)
        for path, report in records.drift_reports(self.client, run):
            drift = self.drift_node(run, path, report)
            self.graph.link(key, drift, "logged")
            self.link_drift_to_snapshots(run, drift, report)
        if names.TAG_GATE_LAST in run.data.tags:  # %gate ran on the run itself
            for path, decision in records.gate_decisions(self.client, run):
                if decision.get("model") is None:
                    self.graph.link(key, self.gate_node(decision, f"{run_id}:{path}"), "gated")
        for version in records.versions_of_run(self.client, run_id):
            self.graph.link(key, self.model_node(version), "registered")
            self.downstream_of_model(version, run)

    def downstream_of_model(self, version: Any, run: Any | None) -> None:
        name, number = version.name, int(version.version)
        key = model_key(name, number)
        if key in self._models_done:
            return
        self._models_done.add(key)
        self.model_node(version)
        for where, decision in version_decisions(self.client, version, run):
            gate = self.gate_node(decision, where)
            self.graph.link(key, gate, "gate decision")
        for tag, summary in records.drift_checks(version):
            self.graph.link(key, self.checked_drift_node(key, tag, summary), "drift check")
        for scoring in records.scoring_runs(self.client, f"{name}/{number}"):
            self.upstream_of_run(scoring)
        if run is None:
            return
        self.downstream_of_run(run)
        for node in self.graph.nodes("drift"):
            if node.attrs.get("run_id") == run.info.run_id:
                self.graph.link(key, node.key, "drift in its run")
        for entry in self.run_inputs(run):
            for user in self.users_of(entry.id):
                if user.info.run_id == run.info.run_id:
                    continue
                for path, report in records.drift_reports(self.client, user):
                    if entry.ref in self.labels_as_refs(user, report):
                        drift = self.drift_node(user, path, report)
                        self.graph.link(key, drift, "drift of its input data")
                        self.link_drift_to_snapshots(user, drift, report)

    def labels_as_refs(self, run: Any, report: dict[str, Any]) -> set[str]:
        """The snapshot refs a drift report's labels name (a bare NAME means the version the
        run loaded)."""
        refs = set()
        loaded = {entry.name: entry.ref for entry in self.run_inputs(run)}
        known = {entry.ref for entry in self.run_inputs(run)}
        for side in ("reference", "current"):
            label = str(report.get(side, {}).get("label", ""))
            if label in known:
                refs.add(label)
            elif label.partition("@")[0] in loaded and label.partition("@")[2] in ("", "latest"):
                refs.add(loaded[label.partition("@")[0]])
        return refs

    def link_drift_to_snapshots(self, run: Any, drift: str, report: dict[str, Any]) -> None:
        for entry in self.run_inputs(run):
            if entry.ref in self.labels_as_refs(run, report):
                self.graph.link(self.snapshot_node(entry), drift, "compared")

    def finish(self) -> None:
        """Link each gate's drift check to the snapshots and drift reports it compared (known
        only once the whole walk is done)."""
        for gate, decision in self.decisions.items():
            self.link_gate_to_data(gate, decision)

    def link_gate_to_data(self, gate: str, decision: dict[str, Any]) -> None:
        for check in decision.get("checks") or []:
            inputs = names.drift_inputs(check)
            if inputs is None:
                continue
            labels = set(inputs)
            for node in self.graph.nodes():
                if node.kind == "snapshot" and node.label in labels:
                    self.graph.link(node.key, gate, "drift check")
                compared = {node.attrs.get("reference"), node.attrs.get("current")}
                if node.kind == "drift" and compared == labels:
                    self.graph.link(node.key, gate, "same comparison")

    # --- entry points ----------------------------------------------------------------------
    def from_snapshot(self, entry: records.SnapshotInput) -> str:
        key = self.snapshot_node(entry)
        users = self.users_of(entry.id)
        live = [r for r in users if not r.data.tags.get(names.TAG_SUPERSEDED_BY)]
        hidden = len(users) - len(live)
        if hidden:
            self.graph.note(f"{hidden} run(s) superseded by a re-run of their cell are not shown")
        if not users:
            self.graph.note(f"no run used {entry.ref} (snapshot it inside %%track to link it)")
        for run in live:
            self.upstream_of_run(run)
            self.downstream_of_run(run)
        return key

    def from_run(self, run: Any) -> str:
        key = self.upstream_of_run(run)
        self.downstream_of_run(run)
        if not records.is_tracked(run):
            self.graph.note(
                f"run {run.info.run_name or run.info.run_id!r} was not opened by %%track: "
                "no cell source or notebook recorded"
            )
        return key

    def from_model(self, version: Any) -> str:
        key = self.model_node(version)
        run = self.get_run(version.run_id) if version.run_id else None
        if run is None:
            self.graph.note(f"{version.name}/{version.version} has no run in this store")
            for ref, snapshot_id in zip(*names.tag_snapshots(version), strict=False):
                self.graph.link(
                    self.snapshot_node(records.SnapshotInput(snapshot_id, ref, "input")),
                    key,
                    "input of its run",
                )
        else:
            self.graph.link(self.upstream_of_run(run), key, "registered")
        self.downstream_of_model(version, run)
        return key


# --- what the user named -------------------------------------------------------------------
def lineage(settings: Settings, obj: Any) -> Lineage:
    """The lineage of a snapshot REF, run id, ``NAME/VERSION``, ``NAME@ALIAS`` or result object."""
    walker = Walker(settings)
    query, start = resolve(walker, obj)
    subject = start()
    walker.finish()
    return walker.graph.build(subject, query)


def resolve(walker: Walker, obj: Any) -> tuple[str, Any]:
    """(what to call the subject, a function that walks from it)."""
    if isinstance(obj, str):
        return obj.strip(), _resolve_text(walker, obj.strip())
    run_id = getattr(obj, "run_id", None) or getattr(getattr(obj, "info", None), "run_id", None)
    if hasattr(obj, "ref") and hasattr(obj, "id") and hasattr(obj, "version"):  # a Snapshot
        return obj.ref, _resolve_text(walker, obj.ref)
    if hasattr(obj, "name") and hasattr(obj, "version") and hasattr(obj, "flavor"):
        ref = f"{obj.name}/{obj.version}"  # a ModelVersion
        return ref, _resolve_text(walker, ref)
    if getattr(obj, "model", None) and getattr(obj, "version", None):  # a GateResult
        ref = f"{obj.model}/{obj.version}"
        return ref, _resolve_text(walker, ref)
    if isinstance(run_id, str):
        return run_id, _resolve_text(walker, run_id)
    raise MLOpsUsageError(
        f"cannot show the lineage of a {type(obj).__name__}; pass a snapshot REF, a run id, "
        "NAME/VERSION or NAME@ALIAS"
    )


def _resolve_text(walker: Walker, text: str) -> Any:
    from mlflow.exceptions import MlflowException

    from ..registry.models import resolve_version

    if not text:
        raise MLOpsUsageError(
            "name what to trace: a snapshot REF, a run id, NAME/VERSION or NAME@ALIAS"
        )
    if RUN_ID.fullmatch(text):
        run = walker.get_run(text)
        if run is not None:
            return lambda: walker.from_run(run)
    name, at, after = text.removeprefix("models:/").partition("@")
    model_text = text.startswith("models:/") or ("/" in text and "@" not in text)
    if not model_text and at:
        model_text = _has_alias(walker.client, name, after)
    if model_text:
        version = resolve_version(walker.client, text)
        return lambda: walker.from_model(version)
    snapshot = _resolve_snapshot(walker.settings, text)
    if snapshot is not None:
        return lambda: walker.from_snapshot(snapshot)
    try:
        walker.client.get_registered_model(name)
    except MlflowException:
        raise MLOpsNotFound(
            f"{text!r} is no snapshot, run id or registered model in this store; "
            "see %snapshot list, %runs and the Models panel"
        ) from None
    version = resolve_version(walker.client, text)  # its own message: no such version or alias
    return lambda: walker.from_model(version)


def decided_at(at: Any) -> str:
    """A decision's UTC time to the second, then a space ("" when it was not recorded)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(at)).strftime("%Y-%m-%d %H:%M:%S UTC ")
    except ValueError:
        return ""


def _has_alias(client: MlflowClient, name: str, alias: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return alias in client.get_registered_model(name).aliases
    except MlflowException:
        return False


def _resolve_snapshot(settings: Settings, text: str) -> records.SnapshotInput | None:
    """A snapshot REF pinned in the configured store, or None when the store does not know it."""
    from ..snapshots.service import describe, open_store

    try:
        found = describe(open_store(settings), text)
    except MLOpsUsageError:
        return None
    return records.SnapshotInput(
        found.id, found.ref, "input", rows=found.rows, columns=found.data_columns or None
    )
