"""``%mlops``: the umbrella magic, ``status`` and ``doctor``, and the helpers every family uses."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import magic_arguments

from .. import api
from ..errors import MLOpsUsageError


@contextmanager
def usage_errors(magic: str) -> Iterator[None]:
    """Turn the core's usage errors into IPython's one-line UsageError."""
    try:
        yield
    except MLOpsUsageError as exc:
        raise UsageError(f"%{magic}: {exc}") from None


def parse(magic_func: Callable[..., Any], line: str, name: str) -> Any:
    """The magic's arguments, split as a shell would, with its name in front of a one-line error.

    IPython's ``parse_argstring`` splits without removing quotes (``--message "first cut"``
    would be stored with its quote characters); here quotes group words and are removed.
    """
    usage = f"see %{name.split()[0]}? for usage"
    try:
        words = shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"%{name}: {str(exc).lower()} in {line!r}; {usage}") from None
    parser = magic_func.parser  # type: ignore[attr-defined]
    try:
        return parser.parse_args(words)
    except UsageError as exc:
        hint = misspelt_flag(words, parser._option_string_actions)
        raise UsageError(f"%{name}: {exc}{hint}; {usage}") from None


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to a misspelt word, if any is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'load'?"`` for a misspelt word, else ""."""
    close = nearest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


def misspelt_flag(words: list[str], flags: Iterable[str]) -> str:
    """``"; --fail_on is not a flag, did you mean --fail-on?"`` for the first unknown flag."""
    flags = list(flags)
    for word in words:
        flag = word.split("=", 1)[0]
        if not flag.startswith("-") or _is_number(flag) or flag in flags:
            continue
        if flag.startswith("--") and any(f.startswith(flag) for f in flags):
            continue  # an abbreviation argparse accepts or calls ambiguous itself
        close = nearest(flag, flags)
        if close:
            return f"; {flag} is not a flag, did you mean {close}?"
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@magics_class
class MLOpsMagics(Magics):
    """Magics of jupyter-mlops."""

    def verbs(self) -> dict[str, Callable[[str], Any]]:
        """``%mlops <verb>``: status, doctor, and every line magic of the registered families."""
        verbs: dict[str, Callable[[str], Any]] = {
            "status": self.mlops_status,
            "doctor": self.mlops_doctor,
        }
        registry = self.shell.magics_manager.registry if self.shell else {}
        for family in registry.values():
            if type(family).__module__.startswith("jupyter_mlops.") and family is not self:
                verbs.update(family.magics["line"])
        return verbs

    @line_magic
    def mlops(self, line: str) -> Any:
        """Umbrella magic: ``%mlops VERB [ARGS]``.

        Verbs: status (which store, tracking URI, experiment and notebook this kernel uses),
        doctor (checks the store, MLflow, the notebook path, torch, GPUs, torchrun and the
        JupyterLab extension), and every other line magic of jupyter-mlops by name.
        """
        verbs = self.verbs()
        verb, _, rest = line.strip().partition(" ")
        if verb not in verbs:
            problem = (
                f"unknown sub-command {verb!r}{did_you_mean(verb, verbs)}"
                if verb
                else ("missing sub-command")
            )
            raise UsageError(f"%mlops: {problem}; choose one of: {', '.join(verbs)}")
        return verbs[verb](rest)

    @magic_arguments()
    def mlops_status(self, line: str) -> Any:
        """%mlops status: the store, tracking URI, experiment and notebook this kernel uses."""
        parse(self.mlops_status, line, "mlops status")
        with usage_errors("mlops status"):
            return api.status()

    @magic_arguments()
    def mlops_doctor(self, line: str) -> Any:
        """%mlops doctor: check that every part jupyter-mlops relies on works here."""
        parse(self.mlops_doctor, line, "mlops doctor")
        with usage_errors("mlops doctor"):
            return api.doctor()
