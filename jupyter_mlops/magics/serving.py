"""``%serve``: real-time endpoints that follow a model alias (and ``%score``, batch scoring)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import api
from ..context import current_settings
from .core import did_you_mean, parse, usage_errors

VERBS = ("status", "stop", "bench")
EXPORTS = ("kserve",)
SERVE_USAGE = (
    "%serve NAME@ALIAS [--port P] [--host H] [--workers N] [--detach] [--log-sample F] "
    "[--enforce-contract NAME] | %serve NAME@ALIAS --export kserve [--out FILE] | "
    "%serve status | %serve stop NAME | %serve bench NAME [--clients C] [--seconds S]"
)


@magics_class
class ServingMagics(Magics):
    """Deployment: ``%serve`` (real-time endpoints) and ``%score`` (batch scoring)."""

    @magic_arguments()
    @argument("words", nargs="*", help="NAME@ALIAS, or status | stop NAME | bench NAME.")
    @argument("--port", type=int, default=0, help="TCP port (default: a free one).")
    @argument(
        "--host",
        default="127.0.0.1",
        help="Interface to bind: 127.0.0.1 (default, this machine only) or 0.0.0.0.",
    )
    @argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1).")
    @argument("--detach", action="store_true", help="Keep serving after this kernel ends.")
    @argument(
        "--log-sample",
        type=float,
        default=1.0,
        help="Share of requests written to the inference log (default 1: all).",
    )
    @argument(
        "--enforce-contract",
        default=None,
        help="Refuse (422) requests that break this data contract (see %%expect).",
    )
    @argument("--export", default=None, help="Write a manifest instead of serving: kserve.")
    @argument("--out", default=None, help="Where --export writes (default: under the store).")
    @argument("--clients", type=int, default=32, help="bench: concurrent clients (default 32).")
    @argument("--seconds", type=float, default=20.0, help="bench: how long (default 20 s).")
    @line_magic
    def serve(self, line: str) -> Any:
        """Serve a registered model alias as a real-time endpoint (MLflow's scoring protocol).

        ``%serve NAME@ALIAS`` starts ``POST /invocations`` (MLflow's JSON and CSV formats),
        ``GET /ping`` and ``GET /version`` in a child process and returns its ``Deployment``
        (``.url``). It follows the alias: after ``%promote`` moves it, the new version answers
        within about a second and no request fails; every response carries the version in
        ``X-MLOps-Model-Version``. Requests are logged: ``mlops.traffic("NAME@ALIAS")``.
        The endpoint stops with the kernel unless ``--detach``; ``%serve stop NAME`` stops it
        from any kernel, ``%serve status`` lists endpoints, ``%serve bench NAME`` loads one.
        ``--export kserve`` writes a KServe InferenceService for the alias's current version.
        """
        args = parse(self.serve, line, "serve")
        words = args.words
        if not words:
            raise UsageError(f"%serve: say what to serve; usage: {SERVE_USAGE}")
        verb, rest = words[0], words[1:]
        settings = current_settings()
        if verb in VERBS:
            return self._verb(verb, rest, args)
        if len(words) > 1:
            raise UsageError(
                f"%serve: unexpected {' '.join(rest)!r}{did_you_mean(verb, VERBS)}; "
                f"usage: {SERVE_USAGE}"
            )
        if args.export is not None:
            if args.export not in EXPORTS:
                raise UsageError(
                    f"%serve: --export {args.export!r} is not known; use: {', '.join(EXPORTS)}"
                )
            from ..serving.kserve import export_kserve

            with usage_errors("serve"):
                return export_kserve(settings, verb, args.out)
        if "@" not in verb and verb not in VERBS:
            hint = did_you_mean(verb, VERBS)
            if hint:
                raise UsageError(f"%serve: unknown sub-command {verb!r}{hint}")
        from ..serving.launch import serve

        with usage_errors("serve"):
            return serve(
                settings,
                verb,
                port=args.port,
                host=args.host,
                workers=args.workers,
                detach=args.detach,
                log_sample=args.log_sample,
                enforce_contract=args.enforce_contract,
            )

    @magic_arguments()
    @argument("model", help="NAME@ALIAS (resolved once, at the start), NAME/VERSION or NAME.")
    @argument(
        "data",
        help="A DataFrame (pandas, polars, Arrow) variable, a snapshot REF or a Parquet path.",
    )
    @argument("--name", default=None, help="Predictions snapshot name (default MODEL-predictions).")
    @argument(
        "--key",
        action="append",
        default=[],
        metavar="COLUMN",
        help="A column kept beside the predictions (repeatable; default: those the model "
        "does not read).",
    )
    @argument("--batch-rows", type=int, default=10_000, help="Rows per batch (default 10,000).")
    @line_magic
    def score(self, line: str) -> Any:
        """Batch-score data with a registered model: ``%score NAME@ALIAS DATA [--name PRED]``.

        Runs in a child process (never in the kernel; it dies with the kernel and stops on
        Ctrl-C), batch by batch with a progress bar, and returns the predictions snapshot: the
        data's index and key columns, then ``prediction``. A run records the model, version and
        data (params) with rows and rows/s (metrics); ``%lineage PRED`` and ``%lineage
        NAME@ALIAS`` show data -> model version -> predictions. A scorer that fails or is
        killed publishes no predictions version.
        """
        from ..serving.scoring import ScoringFailed

        args = parse(self.score, line, "score")
        namespace = self.shell.user_ns if self.shell is not None else {}
        token = args.data
        data = namespace[token] if token.isidentifier() and token in namespace else token
        with usage_errors("score"):
            try:
                return api.score(
                    args.model, data, args.name, keys=args.key, batch_rows=args.batch_rows
                )
            except ScoringFailed as exc:
                raise UsageError(f"%score: {exc}") from None

    def _verb(self, verb: str, rest: list[str], args: Any) -> Any:
        settings = current_settings()
        if verb == "status":
            if rest:
                raise UsageError("%serve status takes no name; it lists every endpoint")
            from ..serving.launch import serving_status

            return serving_status(settings)
        if len(rest) != 1:
            raise UsageError(f"%serve {verb}: name one endpoint: %serve {verb} NAME")
        with usage_errors(f"serve {verb}"):
            if verb == "stop":
                from ..serving.launch import stop

                stopped = stop(settings, rest[0])
                print(f"stopped {', '.join(stopped)}")
                return None
            from ..serving.bench import bench

            return bench(settings, rest[0], clients=args.clients, seconds=args.seconds)
