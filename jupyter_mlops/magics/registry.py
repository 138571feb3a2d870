"""``%register``, ``%promote`` and ``%gate``: the model registry and its promotion gates."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import api
from ..context import current_settings
from ..registry.errors import GateWarning
from .core import parse, usage_errors


class _PickleCaution(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pickle" not in record.getMessage()


@contextmanager
def pickle_caution_shown_by_result() -> Iterator[None]:
    """MLflow logs a paragraph of caution about pickle on every scikit-learn save; in a notebook
    the ModelVersion shown under it says "pickled: load only models you trust" instead."""
    loggers = [logging.getLogger(f"mlflow.{flavor}") for flavor in ("sklearn", "pytorch", "pyfunc")]
    caution = _PickleCaution()
    for logger in loggers:
        logger.addFilter(caution)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(caution)


@contextmanager
def gate_warning_shown_by_result() -> Iterator[None]:
    """A failed --warn-only gate returns a table that reads FAILED; the GateWarning would print
    our install path in red above it. The Python API still warns: there it is the only sign."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GateWarning)
        yield


def _gate_arguments(func: Any) -> Any:
    """The checks %promote and %gate share (applied bottom-up, so listed in reverse)."""
    for decorator in reversed(
        (
            argument(
                "--min-delta",
                type=float,
                default=None,
                help="Margin by which the candidate must beat the --vs holder (default 0).",
            ),
            argument(
                "--metric",
                default=None,
                help="Metric compared with --vs (default: the first one in the first --require).",
            ),
            argument(
                "--reference",
                default=None,
                help="Reference data for the drift check: a DataFrame variable or a snapshot REF.",
            ),
            argument(
                "--current",
                default=None,
                help="Current data for the drift check: a DataFrame variable or a snapshot REF.",
            ),
            argument(
                "--max-drift-share",
                type=float,
                default=None,
                help="Most drifted share of columns allowed (default: share < 0.5).",
            ),
            argument(
                "--warn-only",
                action="store_true",
                help="Warn instead of raising GateFailed when a check fails.",
            ),
            argument(
                "--reason", nargs="+", default=None, help="Why: kept with the recorded decision."
            ),
        )
    ):
        func = decorator(func)
    return func


@magics_class
class RegistryMagics(Magics):
    """Model versions in the MLflow registry and the gates that guard their aliases."""

    def _value(self, name: str | None) -> Any:
        """A variable of the notebook by that name, else the text itself (a path or REF)."""
        if name is None:
            return None
        namespace = self.shell.user_ns if self.shell else {}
        return namespace.get(name, name)

    def _spec(self, args: Any) -> Any:
        """The gate's checks as a ``GateSpec``, validated before anything is read or moved."""
        from ..contracts.service import expect_checks
        from ..drift.gate import gate_spec

        return gate_spec(
            list(args.require),
            vs=args.vs,
            min_delta=args.min_delta,
            metric=args.metric,
            reference=self._value(args.reference),
            current=self._value(args.current),
            max_drift_share=args.max_drift_share,
            labels=(args.reference or "", args.current or ""),
            data=expect_checks(getattr(args, "expect", None), getattr(args, "model", "")),
        )

    @magic_arguments()
    @argument(
        "target",
        help="A variable with the model (torch module, sklearn estimator, callable) or a folder.",
    )
    @argument("--name", required=True, help="Registered model name.")
    @argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="Run to log it to (default: this notebook's latest run).",
    )
    @argument(
        "--input-example",
        default=None,
        metavar="VAR",
        help="A variable with example input (2+ rows); torch is then saved with torch.export.",
    )
    @argument(
        "--flavor",
        default=None,
        help="pytorch, sklearn, pyfunc or folder (default: from the object).",
    )
    @argument(
        "--features",
        default=None,
        metavar="FUNC",
        help="A function of the raw DataFrame: packaged with the model, applied before it.",
    )
    @argument(
        "--factory",
        default=None,
        metavar="FUNC",
        help="A function building the untrained torch model: the target is then a sharded "
        "checkpoint of mlops.distributed.save (job result, job folder or step folder).",
    )
    @line_magic
    def register(self, line: str) -> Any:
        """Register a model: ``%register VAR_OR_PATH --name NAME [--run RUN_ID]``.

        Logs the model to the run (default: the open %%track run, else this notebook's latest
        run that was not superseded) with explicit pip requirements, and registers it as the
        next version of NAME in the MLflow registry of this store. The version is tagged with
        the run id, the run's input snapshots and the notebook. ``--features FUNC`` packages a
        function of the raw DataFrame with the model (one pyfunc: features, then predict), so
        every loader applies the training-time feature code; its source and SHA-256 are
        recorded. Returns a ``ModelVersion``.
        """
        args = parse(self.register, line, "register")
        with usage_errors("register"), pickle_caution_shown_by_result():
            model = self._value(args.target)
            return api.register(
                model,
                args.name,
                run=args.run,
                input_example=self._value(args.input_example),
                flavor=args.flavor,
                features=self._value(args.features),
                factory=self._value(args.factory),
            )

    @magic_arguments()
    @argument("model", help="NAME (latest version), NAME/VERSION or NAME@ALIAS.")
    @argument(
        "--to", required=True, metavar="ALIAS", help="The alias to move when every check passes."
    )
    @argument(
        "--require",
        action="append",
        default=[],
        metavar='"EXPR"',
        help='A condition on the run, e.g. "metrics.val_acc >= 0.9" (repeatable).',
    )
    @argument(
        "--vs",
        default=None,
        metavar="ALIAS",
        help="The candidate must beat the version holding this alias.",
    )
    @argument(
        "--dry-run",
        action="store_true",
        help="Run the checks and record the decision; move nothing.",
    )
    @argument(
        "--expect",
        action="append",
        default=[],
        metavar="NAME",
        help="Re-check NAME's data contract on the snapshot the version was trained on.",
    )
    @_gate_arguments
    @line_magic
    def promote(self, line: str) -> Any:
        """Promote a model version through a gate: ``%promote NAME[/VERSION] --to ALIAS
        [--require "EXPR" ...] [--vs ALIAS] [--min-delta X] [--reference REF --current REF]
        [--max-drift-share X] [--dry-run] [--warn-only] [--reason TEXT]``.

        Runs every check and moves ALIAS only if all pass. ``--require`` reads the version's
        run: metrics.NAME, params.NAME, tags.NAME, numbers, 'strings', == != < <= > >=,
        and/or/not, parentheses (never evaluated as Python). ``--vs`` compares --metric (default:
        the first metric of the first --require; lower is better when that comparison is < or
        <=) with the alias holder's, needing an improvement of at least --min-delta. The drift
        check compares --reference with --current. ``--expect NAME`` re-checks NAME's data
        contract (%expect) on the version of NAME the model was trained on (its run's input
        snapshots). The decision is recorded on the version and
        in <home>/reports/ (JSON, JUnit XML). A failed gate raises GateFailed unless
        --warn-only or gate_mode=warn. Returns a ``GateResult``.
        """
        from ..registry.gates import promote

        args = parse(self.promote, line, "promote")
        with usage_errors("promote"), gate_warning_shown_by_result():
            return promote(
                current_settings(),
                args.model,
                args.to,
                self._spec(args),
                dry_run=args.dry_run,
                warn_only=args.warn_only,
                reason=" ".join(args.reason) if args.reason else None,
            )

    @magic_arguments()
    @argument(
        "require",
        nargs="*",
        metavar='"EXPR"',
        help='Conditions on the run, e.g. "metrics.val_acc >= 0.9".',
    )
    @argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="The run to check (default: this notebook's latest run).",
    )
    @argument(
        "--vs",
        default=None,
        metavar="MODEL@ALIAS",
        help="The run must beat the version holding this alias.",
    )
    @_gate_arguments
    @line_magic
    def gate(self, line: str) -> Any:
        """Gate a run, for CI notebooks: ``%gate "EXPR" ... [--run RUN_ID] [--vs MODEL@ALIAS]
        [--min-delta X] [--reference REF --current REF] [--max-drift-share X] [--warn-only]``.

        The checks of %promote on a run; the decision is recorded on the run and in
        <home>/reports/ (JSON, JUnit XML). A failed gate raises GateFailed, so
        ``jupyter nbconvert --execute`` and papermill exit non-zero. Returns a ``GateResult``.
        """
        from ..registry.gates import gate

        args = parse(self.gate, line, "gate")
        with usage_errors("gate"), gate_warning_shown_by_result():
            return gate(
                current_settings(),
                self._spec(args),
                run_id=args.run,
                warn_only=args.warn_only,
                reason=" ".join(args.reason) if args.reason else None,
            )
