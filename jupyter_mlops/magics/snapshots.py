"""``%snapshot``: save, load, list, diff, verify and garbage-collect data snapshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import api
from ..config import is_url
from ..errors import MLOpsUsageError
from .core import nearest, parse, usage_errors
from .tracking import parse_tags

SUBCOMMANDS = ("load", "list", "diff", "verify", "gc", "rm")


@magics_class
class SnapshotMagics(Magics):
    """Content-addressed, deduplicated, verified snapshots of DataFrames, files and folders."""

    def _subcommands(self) -> dict[str, Callable[[str], Any]]:
        return {
            "load": self.snapshot_load,
            "list": self.snapshot_list,
            "diff": self.snapshot_diff,
            "verify": self.snapshot_verify,
            "gc": self.snapshot_gc,
            "rm": self.snapshot_rm,
        }

    @magic_arguments()
    @argument(
        "target",
        nargs="?",
        default=None,
        help="A pandas/polars frame, Arrow table or reader variable; a Parquet file, folder or "
        "URL; any other file or folder.",
    )
    @argument("--name", required=True, help="Snapshot name (letters, digits, '_', '-', '.').")
    @argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="A tag (repeatable).")
    @argument("--message", "-m", nargs="+", default=None, help="A note kept with the version.")
    @argument(
        "--allow-pickle",
        action="store_true",
        help="Store columns Arrow cannot hold (mixed objects, complex) as pickled cells.",
    )
    @argument(
        "--allow-violations",
        action="store_true",
        help="Save even if the data breaks NAME's contract (%%expect); the version is tagged.",
    )
    @argument("--sql", metavar="QUERY", nargs="+", default=None, help="Snapshot a query's result.")
    @argument("--db", metavar="URL", default=None, help="The database --sql runs on (DuckDB).")
    @line_magic
    def snapshot(self, line: str) -> Any:
        """Snapshot data: ``%snapshot SOURCE --name NAME [--tag k=v ...] [--message TEXT]``.

        SOURCE: a pandas or polars frame (or LazyFrame), an Arrow table or record-batch reader, a
        Parquet file, folder or URL, or any file or folder; or ``--sql "QUERY" --db URL``.
        Saves it as the next version NAME@vN: content-addressed (BLAKE3 per column x
        content-defined row chunk, so edits anywhere write about what changed), deduplicated
        against every earlier version, written atomically; sources other than a pandas frame
        are streamed in bounded memory. Saving unchanged content returns the existing version
        and writes 0 bytes. Inside ``%%track`` (or an active MLflow run) the version is logged
        as a run input.

        Sub-commands (REF is NAME, NAME@vN, NAME@latest or an id prefix of 8+ hex chars):

          %snapshot load REF [--as pandas|arrow|polars] [-o VAR] [--to PATH] [--no-verify]
          %snapshot list [NAME]
          %snapshot diff REF_A REF_B
          %snapshot verify [REF]
          %snapshot rm NAME@vN [--force]
          %snapshot gc [--dry-run] [--keep-last N] [--keep-tagged]
        """
        first, _, rest = line.strip().partition(" ")
        subcommands = self._subcommands()
        if first in subcommands:
            return subcommands[first](rest)
        misspelt = nearest(first, subcommands)
        namespace = self.shell.user_ns if self.shell is not None else {}
        if misspelt and first not in namespace and not Path(first).expanduser().exists():
            raise UsageError(
                f"%snapshot: unknown sub-command {first!r}; did you mean {misspelt!r}? "
                f"(sub-commands: {', '.join(subcommands)}; to save, give a DataFrame or a path)"
            )
        args = parse(self.snapshot, line, "snapshot")
        with usage_errors("snapshot"):
            query = " ".join(args.sql) if args.sql else None
            if args.target is None and query is None:
                raise MLOpsUsageError("give a SOURCE to snapshot, or --sql QUERY --db URL")
            target = None if args.target is None else self._target(args.target)
            message = " ".join(args.message) if args.message else None
            return api.snapshot(
                target,
                args.name,
                tags=parse_tags(args.tag),
                message=message,
                allow_pickle=args.allow_pickle,
                allow_violations=args.allow_violations,
                sql=query,
                db=args.db,
            )

    def _target(self, token: str) -> Any:
        namespace = self.shell.user_ns if self.shell is not None else {}
        if token.isidentifier() and token in namespace:
            return namespace[token]
        path = Path(token).expanduser()
        if path.exists() or is_url(token):
            return token if is_url(token) else str(path)
        raise MLOpsUsageError(
            f"no variable, path or URL named {token!r}; give a frame, a table or a path"
        )

    @magic_arguments()
    @argument("ref", help="NAME, NAME@vN, NAME@latest or an id prefix.")
    @argument("-o", "--output", metavar="VAR", help="Also store the result in this variable.")
    @argument("--to", metavar="PATH", help="Where to restore a file or folder snapshot.")
    @argument("--no-verify", action="store_true", help="Skip re-hashing the data read.")
    @argument("--allow-pickle", action="store_true", help="Unpickle columns (runs writer's code).")
    @argument(
        "--as",
        dest="as_",
        choices=("pandas", "arrow", "polars"),
        default="pandas",
        help="What a table comes back as (default pandas, exactly as saved).",
    )
    def snapshot_load(self, line: str) -> Any:
        """%snapshot load REF [-o VAR] [--to PATH]: the DataFrame (or restored path)."""
        args = parse(self.snapshot_load, line, "snapshot load")
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"%snapshot load: -o {args.output!r} is not a Python variable name")
        with usage_errors("snapshot load"):
            value = api.load(
                args.ref,
                verify=not args.no_verify,
                to=args.to,
                allow_pickle=args.allow_pickle,
                as_=args.as_,
            )
        if args.output is not None and self.shell is not None:
            self.shell.user_ns[args.output] = value
        return value

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Only this name's versions.")
    def snapshot_list(self, line: str) -> Any:
        """%snapshot list [NAME]: a DataFrame with one row per version."""
        args = parse(self.snapshot_list, line, "snapshot list")
        with usage_errors("snapshot list"):
            return api.snapshots(args.name)

    @magic_arguments()
    @argument("ref_a", help="The older snapshot.")
    @argument("ref_b", help="The newer snapshot.")
    def snapshot_diff(self, line: str) -> Any:
        """%snapshot diff REF_A REF_B: schema, rows, changed columns and row ranges, stats."""
        args = parse(self.snapshot_diff, line, "snapshot diff")
        with usage_errors("snapshot diff"):
            return api.diff(args.ref_a, args.ref_b)

    @magic_arguments()
    @argument("ref", nargs="?", default=None, help="One snapshot (default: every version).")
    def snapshot_verify(self, line: str) -> Any:
        """%snapshot verify [REF]: re-hash stored data and report every damaged object."""
        args = parse(self.snapshot_verify, line, "snapshot verify")
        with usage_errors("snapshot verify"):
            return api.verify_snapshots(args.ref)

    @magic_arguments()
    @argument("--dry-run", action="store_true", help="Only report what would go; change nothing.")
    @argument(
        "--keep-last",
        type=int,
        metavar="N",
        default=None,
        help="First mark every version but the last N of each name removed (unless used).",
    )
    @argument(
        "--keep-tagged", action="store_true", help="With --keep-last: also keep tagged versions."
    )
    def snapshot_gc(self, line: str) -> Any:
        """%snapshot gc [--dry-run] [--keep-last N] [--keep-tagged]: reclaim data no version uses.

        With --keep-last N, versions older than the last N of each name are marked removed
        first, except those a run or a registered model uses (and tagged ones with
        --keep-tagged); the report says which went, which stayed and why, with bytes.
        """
        args = parse(self.snapshot_gc, line, "snapshot gc")
        with usage_errors("snapshot gc"):
            return api.gc_snapshots(
                dry_run=args.dry_run, keep_last=args.keep_last, keep_tagged=args.keep_tagged
            )

    @magic_arguments()
    @argument("ref", help="The version to remove: NAME@vN.")
    @argument("--force", action="store_true", help="Remove it even if a run or model uses it.")
    def snapshot_rm(self, line: str) -> Any:
        """%snapshot rm NAME@vN [--force]: mark a version removed; the next gc reclaims its data.

        A version a run or a registered model uses is refused (the message names them) unless
        --force. The number is never reused, and loading it says when and how it was removed.
        """
        args = parse(self.snapshot_rm, line, "snapshot rm")
        with usage_errors("snapshot rm"):
            return api.remove_snapshot(args.ref, force=args.force)
