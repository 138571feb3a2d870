"""``%monitor`` and ``%schedule``: watch a served model over time windows, run notebooks on a
schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from ..context import current_settings
from ..errors import GateFailed, MLOpsUsageError
from .core import parse, usage_errors
from .drift import gate_warning_from_magic


def papermill_parameter(notebook: str) -> Any:
    """``-p NAME VALUE`` (repeatable): a papermill parameter of ``notebook``."""
    return argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help=f"A papermill parameter of {notebook} (repeatable).",
    )


def pairs(values: Sequence[Sequence[str]] | None, flag: str = "-p") -> dict[str, str]:
    """``-p name value -p other value`` -> {name: value}."""
    found: dict[str, str] = {}
    for item in values or ():
        if len(item) != 2 or not item[0]:
            raise MLOpsUsageError(f"{flag} takes a name and a value: {flag} epochs 40")
        found[item[0]] = item[1]
    return found


@magics_class
class MonitoringMagics(Magics):
    """Monitoring of served models and scheduled notebooks."""

    @magic_arguments()
    @argument("model", help="The served model: NAME@ALIAS.")
    @argument("--since", default=None, help="From: an ISO time (UTC) or a duration ago (24h).")
    @argument("--until", default=None, help="Until (excluded): an ISO time or a duration ago.")
    @argument("--window", default="1h", help="Window length: 15min, 1h, 1d (default 1h).")
    @argument(
        "--reference",
        default=None,
        help="Compare against this snapshot REF or DataFrame variable (default: the snapshots "
        "the version was trained on, found through lineage).",
    )
    @argument(
        "--data",
        default=None,
        help="Monitor this DataFrame variable or snapshot REF instead of the inference log.",
    )
    @argument(
        "--fail-on",
        default=None,
        help='Gate: "window.share_drifted > 0.3, quality.accuracy < 0.85"; recorded like a '
        "promotion (<home>/reports/, MLflow, %%lineage).",
    )
    @argument("--retrain", default=None, metavar="NOTEBOOK", help="Run it when the gate fails.")
    @papermill_parameter("the --retrain notebook")
    @line_magic
    def monitor(self, line: str) -> Any:
        """Monitor a served model: ``%monitor NAME@ALIAS [--since T] [--window 1h]
        [--reference REF] [--fail-on EXPR] [--retrain NOTEBOOK [-p NAME VALUE ...]]``.

        Per window of the model's inference log: requests, latency, feature drift against the
        data the version was trained on (Evidently's verdicts), prediction drift against the
        model's outputs on that data, data quality (missing, unseen categories, out of range,
        type changes) and, once ``mlops.feedback`` stored labels, accuracy/F1/ROC-AUC or
        MAE/RMSE and the outcome columns' means. The report is logged to a monitoring run and
        recorded on the model version. --fail-on is a gate; when it fails --retrain runs the
        notebook through papermill (parameters window, reason, trigger_run) before GateFailed.
        """
        from ..monitoring import service

        args = parse(self.monitor, line, "monitor")
        namespace = self.shell.user_ns if self.shell else {}
        with usage_errors("monitor"), gate_warning_from_magic("monitor"):
            options = service.MonitorOptions(
                since=args.since,
                until=args.until,
                window=args.window,
                reference=namespace.get(args.reference, args.reference),
                data=namespace.get(args.data, args.data),
                fail_on=args.fail_on,
                retrain=args.retrain,
                retrain_params=pairs(args.parameter),
                labels=(args.reference or "reference", args.data or "production data"),
            )
            if args.parameter and not args.retrain:
                raise MLOpsUsageError("-p gives parameters to --retrain NOTEBOOK; add --retrain")
            try:
                return service.monitor(current_settings(), args.model, options)
            except GateFailed as failed:  # show the report, then fail with the gate's table
                shown = getattr(failed, "monitor", None)
                if shown is not None:
                    display(shown)
                raise

    @magic_arguments()
    @argument("words", nargs="+", help="NOTEBOOK --cron EXPR, or list, or rm ID.")
    @argument("--cron", default=None, help='When: "0 3 * * *" (or 6 fields, seconds first).')
    @papermill_parameter("the notebook")
    @argument(
        "--export",
        default=None,
        choices=["kubernetes"],
        help="Write a Kubernetes CronJob manifest running the same papermill command instead.",
    )
    @argument("--output", default=None, help="Where --export writes the manifest.")
    @argument("--image", default=None, help="The container image of the exported CronJob.")
    @argument(
        "--backend",
        default=None,
        help="Who runs it: jupyter-scheduler or apscheduler (default: jupyter-scheduler when "
        "it is installed and this kernel's Jupyter server runs it, else apscheduler).",
    )
    @line_magic
    def schedule(self, line: str) -> Any:
        """Run a notebook on a schedule: ``%schedule NOTEBOOK --cron "0 3 * * *" [-p NAME VALUE]
        [--export kubernetes]``, ``%schedule list``, ``%schedule rm ID``.

        With jupyter-scheduler installed and enabled on this kernel's Jupyter server, the
        schedule is one of its job definitions. Otherwise it lives in the project store
        (APScheduler's SQLite job store), so it survives Jupyter restarts; the Jupyter server
        extension (or ``python -m jupyter_mlops.monitoring.scheduler HOME``) runs it with no
        kernel open. Each execution is an MLflow run (experiment "schedules") with the executed
        notebook and its outcome.
        """
        from ..monitoring import schedule_backends, schedules

        args = parse(self.schedule, line, "schedule")
        with usage_errors("schedule"):
            settings = current_settings()
            verb = args.words[0]
            if verb == "list" and len(args.words) == 1:
                return schedule_backends.choose(args.backend).list(settings)
            if verb == "rm":
                if len(args.words) != 2:
                    raise MLOpsUsageError("%schedule rm takes one schedule ID; see %schedule list")
                return schedule_backends.choose(args.backend).remove(settings, args.words[1])
            if len(args.words) != 1:
                raise MLOpsUsageError(
                    "give one notebook, or the sub-commands list / rm ID; quote a path with spaces"
                )
            if args.cron is None:
                raise MLOpsUsageError('give --cron "MIN HOUR DAY MONTH WEEKDAY", e.g. "0 3 * * *"')
            parameters = pairs(args.parameter)
            if args.export == "kubernetes":
                return schedules.export_kubernetes(
                    settings, verb, args.cron, parameters, output=args.output, image=args.image
                )
            return schedule_backends.choose(args.backend).add(settings, verb, args.cron, parameters)
