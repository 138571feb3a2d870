"""Tab completion for the magics: sub-commands, flags, snapshot names, model names and aliases.

One IPython matcher (in ``Completer.custom_matchers``, so the kernel's ``complete_request`` uses
it too) serves every magic, also after ``x = `` and under ``%mlops VERB``; its candidates replace
Python's for a magic's arguments. Flags come from each magic's own argument parser, so
they never drift from ``%magic?``. Names are read cheaply when TAB is pressed: snapshot names
from the store's ``refs/`` listing, models and aliases straight from a SQLite registry.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any

#: What each positional argument of a (sub-)command is: a kind of name, see ``names()``.
POSITIONALS: dict[str, tuple[str, ...]] = {
    "snapshot": ("snapshot-verb",),
    "snapshot load": ("snapshot",),
    "snapshot list": ("snapshot-name",),
    "snapshot diff": ("snapshot", "snapshot"),
    "snapshot verify": ("snapshot",),
    "snapshot rm": ("snapshot",),
    "drift": ("data", "data"),
    "register": ("variable",),
    "promote": ("model",),
    "lineage": ("lineage",),
    "mlops": ("verb",),
    "distributed": ("distributed-verb",),
    "distributed pool": ("pool-verb",),
    "expect": ("snapshot-name",),
    "expect list": ("snapshot-name",),
    "expect check": ("snapshot",),
    "skew": ("model-alias",),
}
#: The kind of name a flag takes as its value.
FLAG_VALUES: dict[str, str] = {
    "--to": "alias",
    "--vs": "model-alias",
    "--model": "model-alias",
    "--reference": "data",
    "--current": "data",
    "--name": "name",
    "--engine": "engine",
    "--flavor": "flavor",
    "--policy": "policy",
    "--backend": "backend",
    "--expect": "snapshot-name",
    "--contract": "snapshot-name",
    "--features": "variable",
}
FIXED = {
    "snapshot-verb": ("load", "list", "diff", "verify", "gc", "rm"),
    "distributed-verb": ("status", "cancel", "pool"),
    "pool-verb": ("start", "stop", "restart", "status"),
    "engine": ("fast", "evidently"),
    "flavor": ("pytorch", "sklearn", "pyfunc", "folder"),
    "policy": ("auto", "new", "replace", "resume"),
    "backend": ("auto", "nccl", "gloo"),
}
_MAGIC = re.compile(r"%{1,2}([A-Za-z_]\w*)")


def install_completer(shell: Any) -> None:
    """Complete ``%name ...`` for each of our magics, wherever it appears in the line."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    names = {
        name
        for family in shell.magics_manager.registry.values()
        if type(family).__module__.startswith("jupyter_mlops.")
        for kind in ("line", "cell")
        for name in family.magics[kind]
    }
    completer = MagicCompleter(shell, names)

    @context_matcher()
    def mlops_matcher(context: Any) -> dict[str, Any]:
        line = context.text_until_cursor.rsplit("\n", 1)[-1]
        try:
            found = completer.complete(line, context.token)
        except Exception:  # completion must never raise into the user's typing
            found = []
        # Our candidates replace Python's (keywords, builtins) for a magic's arguments.
        return {
            "completions": [SimpleCompletion(text=text, type="mlops") for text in found],
            "suppress": bool(found),
            "ordered": True,
        }

    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "mlops_matcher"]
    matchers.append(mlops_matcher)


class MagicCompleter:
    """Works out what is being typed (magic, sub-command, flag, positional) and offers names."""

    def __init__(self, shell: Any, names: set[str]) -> None:
        self.shell = shell
        self.magic_names = names

    def complete(self, before_cursor: str, token: str) -> list[str]:
        """Candidates for ``token``, the word being typed at the end of ``before_cursor``."""
        magic, words = self.command(before_cursor)
        if magic is None:
            return []
        typed = words[:-1]  # the last word is the one being completed
        joiner = before_cursor[-len(token) - 1] if len(before_cursor) > len(token) else ""
        if joiner == "@":  # NAME@<TAB>: versions of a snapshot, aliases of a model
            return self.after_at(words[-1].rsplit("@", 1)[0], token)
        previous = typed[-1] if typed else ""
        if token.startswith("-"):
            return [f for f in self.flags(magic) if f.startswith(token)]
        if previous.startswith("--") and previous in FLAG_VALUES and previous in self.flags(magic):
            return self.names(FLAG_VALUES[previous], token, magic, typed)
        positionals = [w for i, w in enumerate(typed) if self.is_positional(w, typed[:i], magic)]
        kinds = POSITIONALS.get(magic, ())
        if len(positionals) >= len(kinds):
            return []
        return self.names(kinds[len(positionals)], token, magic, typed)

    def command(self, before_cursor: str) -> tuple[str | None, list[str]]:
        """The (sub-)command being typed, e.g. "snapshot load", and the words after it."""
        found = [m for m in _MAGIC.finditer(before_cursor) if m.group(1) in self.magic_names]
        if not found:
            return None, []
        last = found[-1]
        magic = last.group(1)
        try:
            words = shlex.split(before_cursor[last.end() :])
        except ValueError:  # an open quote
            words = before_cursor[last.end() :].split()
        if before_cursor.endswith(" ") or not words:
            words.append("")
        if magic == "mlops" and len(words) > 1:
            magic, words = words[0], words[1:]
        sub = f"{magic} {words[0]}"
        if len(words) > 1 and (sub in POSITIONALS or self.parser(sub) is not None):
            return sub, words[1:]
        return magic, words

    def is_positional(self, word: str, before: list[str], magic: str) -> bool:
        if word.startswith("-"):
            return False
        if not before:
            return True
        flag = before[-1]
        return not (flag.startswith("-") and self.takes_value(magic, flag))

    def parser(self, magic: str) -> Any:
        head, _, sub = magic.partition(" ")
        magics = self.shell.magics_manager.magics
        function = magics["line"].get(head) or magics["cell"].get(head)
        owner = getattr(function, "__self__", None)
        if sub and owner is not None:
            function = getattr(owner, f"{head}_{sub}", None)
        return getattr(function, "parser", None)

    def flags(self, magic: str) -> list[str]:
        parser = self.parser(magic)
        if parser is None:
            return []
        return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))

    def takes_value(self, magic: str, flag: str) -> bool:
        parser = self.parser(magic)
        action = parser._option_string_actions.get(flag) if parser is not None else None
        return bool(action is not None and action.nargs != 0)

    # --- names ----------------------------------------------------------------------------
    def names(self, kind: str, token: str, magic: str, typed: list[str]) -> list[str]:
        sources: dict[str, Callable[[], Iterable[str]]] = {
            "snapshot": self.snapshot_names,
            "snapshot-name": self.snapshot_names,
            "model": lambda: self.models(),
            "model-alias": self.model_refs,
            "alias": lambda: self.aliases(typed),
            "data": lambda: [*self.frames(), *self.snapshot_names()],
            "variable": self.variables,
            "lineage": lambda: [*self.snapshot_names(), *self.models(), *self.model_refs()],
            "verb": self.verbs,
            "name": lambda: self.models() if magic == "register" else self.snapshot_names(),
        }
        if kind in FIXED:
            candidates: Iterable[str] = FIXED[kind]
            if kind == "snapshot-verb":
                candidates = [*FIXED[kind], *self.frames()]
        else:
            candidates = sources.get(kind, list)()
        return sorted({c for c in candidates if c.startswith(token)})

    def after_at(self, name: str, token: str) -> list[str]:
        models = self.model_aliases()
        if name in models:
            return [a for a in models[name] if a.startswith(token)]
        store = self.snapshot_store()
        if store is None or name not in store.names():
            return []
        return [
            v for v in ("latest", *(f"v{n}" for n in store.versions(name))) if v.startswith(token)
        ]

    def snapshot_store(self) -> Any:
        from ..context import current_settings
        from ..snapshots.service import open_store

        return open_store(current_settings())

    def snapshot_names(self) -> list[str]:
        return list(self.snapshot_store().names())

    def model_aliases(self) -> dict[str, list[str]]:
        from ..context import current_settings
        from ..registry.names import model_aliases

        return model_aliases(current_settings().tracking_uri)

    def models(self) -> list[str]:
        return list(self.model_aliases())

    def model_refs(self) -> list[str]:
        return [f"{n}@{a}" for n, aliases in self.model_aliases().items() for a in aliases]

    def aliases(self, typed: list[str]) -> list[str]:
        models = self.model_aliases()
        model = next((w for w in typed if not w.startswith("-")), "").split("/")[0]
        if model in models:
            return models[model]
        return sorted({a for aliases in models.values() for a in aliases})

    def frames(self) -> list[str]:
        namespace = self.shell.user_ns
        return [
            name
            for name, value in namespace.items()
            if not name.startswith("_") and type(value).__name__ in ("DataFrame", "Table")
        ]

    def variables(self) -> list[str]:
        hidden = self.shell.user_ns_hidden
        return [n for n in self.shell.user_ns if not n.startswith("_") and n not in hidden]

    def verbs(self) -> list[str]:
        mlops = self.shell.magics_manager.magics["line"].get("mlops")
        owner = getattr(mlops, "__self__", None)
        return list(owner.verbs()) if owner is not None else []
