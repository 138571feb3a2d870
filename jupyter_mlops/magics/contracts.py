"""``%expect`` (data contracts on snapshot names) and ``%skew`` (training vs serving features)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

from ..context import current_settings
from ..errors import GateFailed
from .core import parse, usage_errors

SUBCOMMANDS = ("list", "check")


@magics_class
class ContractMagics(Magics):
    """Data contracts checked by pandera, and training-serving skew."""

    def _subcommands(self) -> dict[str, Callable[[str], Any]]:
        return {"list": self.expect_list, "check": self.expect_check}

    @magic_arguments()
    @argument("name", help="The snapshot name the contract guards.")
    @argument("rules", nargs="*", metavar='"RULE"', help="Rules, each quoted.")
    @argument(
        "--replace",
        action="store_true",
        help="The contract becomes exactly these rules (default: add to it).",
    )
    @line_magic
    def expect(self, line: str) -> Any:
        """Declare a data contract: ``%expect NAME "RULE" ... [--replace]``.

        Rules (quote each one; a column with spaces in `backquotes`)::

            "age between 0 120"   "age >= 0"   "plan in {free, pro}"   "customer_id unique"
            "income not null"     "income not null >= 0.99"   "age dtype int64"
            "rows >= 1000"        "rows between 10 1e6"       "schema strict"

        Each call stores a new version of NAME's contract (a rule of the same kind on the same
        column replaces the older one). From then on ``%snapshot ... --name NAME`` checks the
        data with pandera before writing: a violation writes no version (one line saying which
        rules failed) unless ``--allow-violations``. "schema strict" pins the columns and dtypes
        of NAME's latest version. ``%promote ... --expect NAME`` re-checks the data a model was
        trained on. Returns the ``Contract``.

        Sub-commands:

          %expect list [NAME]                 contract versions (all names: the latest of each)
          %expect check REF [--contract NAME] check a snapshot version -> ContractResult
        """
        first, _, rest = line.strip().partition(" ")
        subcommands = self._subcommands()
        if first in subcommands:
            return subcommands[first](rest)
        args = parse(self.expect, line, "expect")
        with usage_errors("expect"):
            from ..contracts.service import expect

            return expect(current_settings(), args.name, args.rules, replace=args.replace)

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Only this contract's versions.")
    def expect_list(self, line: str) -> Any:
        """%expect list [NAME]: a DataFrame of contract versions and their rules."""
        args = parse(self.expect_list, line, "expect list")
        with usage_errors("expect list"):
            from ..contracts.service import contracts

            return contracts(current_settings(), args.name)

    @magic_arguments()
    @argument("ref", help="A snapshot REF: NAME, NAME@vN, NAME@latest or an id prefix.")
    @argument(
        "--contract",
        default=None,
        metavar="NAME",
        help="Check against this name's contract (default: the REF's own name).",
    )
    def expect_check(self, line: str) -> Any:
        """%expect check REF [--contract NAME]: every rule, from the manifest when its
        statistics settle it, else on the data; recorded like a gate decision."""
        args = parse(self.expect_check, line, "expect check")
        with usage_errors("expect check"):
            from ..contracts.service import check

            return check(current_settings(), args.ref, contract=args.contract)

    @magic_arguments()
    @argument("model", help="NAME@ALIAS (or NAME/VERSION) of a model registered with --features.")
    @argument(
        "--since",
        default=None,
        help="Only requests logged since then: a timestamp (UTC when naive) or a variable.",
    )
    @argument("--key", default=None, metavar="COL", help="Pair rows by this key column.")
    @argument(
        "--fail-on",
        default=None,
        help='Gate: "share_drifted > 0", "mismatch_share > 0.01", "column:FEATURE > 0.1", '
        'joined by "," or "or"; recorded like a promotion.',
    )
    @line_magic
    def skew(self, line: str) -> Any:
        """Training-serving skew: ``%skew NAME@ALIAS [--since T] [--key COL] [--fail-on EXPR]``.

        Compares the features the endpoint computed (the ``feature.*`` columns of its inference
        log) with the registered feature function applied to the version's training snapshot:
        each feature's distribution with the drift engine, and with --key the share of rows of
        the same key whose values differ. --fail-on names: share_drifted, n_drifted, drifted,
        mismatch_share, matched_rows, column:FEATURE. A condition that holds shows the report,
        then raises GateFailed. Returns a ``SkewResult``.
        """
        from ..contracts import skew as skewing

        args = parse(self.skew, line, "skew")
        namespace = self.shell.user_ns if self.shell else {}
        since = namespace.get(args.since, args.since) if args.since is not None else None
        with usage_errors("skew"):
            settings = current_settings()
            result = skewing.compare(
                settings, args.model, since=since, key=args.key, fail_on=args.fail_on
            )
            if args.fail_on is None:
                return result
            try:
                decision = skewing.gate(settings, result, args.fail_on)
            except GateFailed:  # show the report, then fail the cell with the gate's table
                display(result)
                raise
            return skewing.with_decision(result, decision)
