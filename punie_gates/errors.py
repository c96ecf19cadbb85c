"""Problems a user can fix: a bad option, a missing or malformed input file, a candidate
that cannot be found or used. The plugin and the commands catch `UserError` (and
only it) to say the cause in one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


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


class EndpointError(UserError, RuntimeError):
    """An OpenAI-compatible endpoint (--candidate/--baseline URL) that is down, too slow, or answers
    something other than a chat completion; the message names the URL and what it returned."""


class DamagedArtifactError(UserError, RuntimeError):
    """A cached artifact whose files no longer match its manifest (refused with --damaged-cache=refuse)."""


class ReportFolderBusyError(UserError, RuntimeError):
    """Another run is writing its report into the same --report-dir."""


class UnsavedResultsError(UserError, RuntimeError):
    """A result file (answers, conversations) the run could not write: the message says where
    the results were kept instead; `lines` holds them when they could be kept nowhere."""

    def __init__(self, message: str, lines: tuple[str, ...] = ()):
        super().__init__(message)
        self.lines = lines


# OSErrors that say the machine, not the model or the suite, is in the way.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def user_error_message(exc: BaseException) -> str | None:
    """The one line to show for a problem the user can fix (a UserError, a full disk),
    or None when `exc` is something else (a failure, or a bug that keeps its traceback)."""
    if isinstance(exc, UserError):
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        return "; ".join(lines) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM) and exc.filename:
        return (
            f"permission denied on {exc.filename} ({exc.strerror}): make it writable by this user, or point "
            "--report-dir / --work-dir (PUNIE_GATES_REPORT_DIR / PUNIE_GATES_WORK_DIR) at a folder that is"
        )
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" writing {exc.filename}" if exc.filename else ""
        return (
            f"{_ENVIRONMENT_ERRNOS[exc.errno]}{where} ({exc.strerror}): free space there, or point "
            "--report-dir / --work-dir (PUNIE_GATES_REPORT_DIR / PUNIE_GATES_WORK_DIR) at another disk"
        )
    return None
