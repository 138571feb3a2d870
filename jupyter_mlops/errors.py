"""The one exception family of jupyter-mlops.

Every message says what went wrong and what to do about it. Faces (magics, server handlers) turn
:class:`MLOpsUsageError` into a one-line usage error, never a traceback.
"""

from __future__ import annotations


class MLOpsError(Exception):
    """Base class of every error jupyter-mlops raises on purpose."""


class MLOpsUsageError(MLOpsError, ValueError):
    """The user asked for something malformed: a bad flag, value, name or reference."""


class MLOpsNotFound(MLOpsUsageError):
    """A well-formed reference names nothing in this store (a run, model, version, alias...)."""


class ConfigError(MLOpsUsageError):
    """A configuration value (flag, %config, env var or pyproject.toml) is invalid."""


class GateFailed(MLOpsError):
    """A promotion gate or a ``--fail-on`` condition did not pass."""
