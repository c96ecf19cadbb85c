"""Problems a user can fix: a bad option, a missing or malformed input file, a candidate
that cannot be found or used. The plugin and the commands catch `UserError` (and
only it) to say the cause in one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what and how."""


class OptionError(UserError, ValueError):
    """A command-line option, ini key or environment variable with a bad value."""


class DataFileError(UserError, ValueError):
    """An input file (thresholds, queries, tool catalog, training data) that cannot be used."""


class CandidateError(UserError, RuntimeError):
    """A candidate that cannot be found, fetched or used, with what to do about it."""


class MemoryBudgetError(CandidateError):
    """The model would not fit the memory budget (raised before loading it)."""


class DiskSpaceError(UserError, RuntimeError):
    """Not enough free disk space for an artifact (raised before anything is written)."""


class ArtifactBusyError(UserError, RuntimeError):
    """Another process kept building an artifact for longer than this one may wait."""


class ServerError(UserError, RuntimeError):
    """mlx_lm.server did not start or stopped answering; the message quotes its log."""
