"""The one error tree of hmig.

Every failure a user can meet is an `HmigError` with a `message` (what happened) and a `hint`
(what to do). Each class carries the exit code the entry points return for it, so the mapping
from condition to exit code lives here and nowhere else. This module imports nothing from hmig.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the README's table documents the same values."""

    OK = 0
    NO = 1  # it ran and the answer is no: a migration failed, drift, strict order, lint
    CANNOT = 2  # it could not run, or refused, before changing anything
    INTERRUPTED = 130  # SIGINT or SIGTERM: the running statement was cancelled and rolled back


class HmigError(Exception):
    """Root of every error hmig raises on purpose."""

    exit_code: ExitCode = ExitCode.CANNOT
    outcome: str = "error"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ManifestError(HmigError):
    """The manifest cannot be read or does not match its schema.

    `path` is the key as a path into the YAML (`("migrations", "order", 2)`): a check made
    away from the manifest's text raises without a line, and the caller that has the text
    fills it in from `path`.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        key: str | None = None,
        path: tuple[str | int, ...] = (),
        hint: str = "",
    ) -> None:
        where = file if line is None else f"{file}:{line}"
        prefix = f"{where}: " + (f"{key}: " if key else "")
        super().__init__(prefix + message, hint=hint)
        self.reason = message
        self.file = file
        self.line = line
        self.key = key
        self.path = path


class MigrationFileError(HmigError):
    """A migration file (or the set of files) is invalid: nothing was run."""

    def __init__(
        self,
        message: str,
        *,
        file: str,
        line: int | None = None,
        column: int | None = None,
        hint: str = "",
    ) -> None:
        where = file if line is None else f"{file}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line
        self.column = column


class ConfigurationError(HmigError):
    """The environment, command line or process environment is incomplete or contradictory."""


class ConnectionFailed(HmigError):
    """The database could not be reached or refused the login."""


class ToolMissing(HmigError):
    """A program hmig needs (node, pg_dump, ...) is absent or too old."""


class BackupFailed(HmigError):
    """A required backup could not be taken or verified: no migration ran."""


class Refused(HmigError):
    """Policy refused the command before anything changed."""

    outcome = "refused"


class LockNotAcquired(HmigError):
    """Another run held the migration lock for longer than --lock-wait."""


class InDoubt(HmigError):
    """A non-transactional statement may or may not have committed; a human must decide."""


class StrictOrderViolation(HmigError):
    """A pending migration sorts before an applied one and the environment forbids that."""

    exit_code = ExitCode.NO
    outcome = "failed"


class JsMigrationError(HmigError):
    """A `.js` migration could not be loaded or rendered by node-pg-migrate."""

    def __init__(self, message: str, *, file: str, line: int | None = None, hint: str = "") -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line
        self.reason = message


class StatementFailed(HmigError):
    """The server rejected a statement; raised by the database adapter, caught by execution."""

    exit_code = ExitCode.NO
    outcome = "failed"

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None,
        detail: str | None = None,
        server_hint: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message, hint=server_hint or "")
        self.sqlstate = sqlstate
        self.detail = detail
        self.server_hint = server_hint
        self.position = position


class Interrupted(HmigError):
    """SIGINT or SIGTERM arrived; the running statement was cancelled."""

    exit_code = ExitCode.INTERRUPTED
    outcome = "cancelled"


class GitHubError(HmigError):
    """A GitHub API call failed after its retries; the Action reports it, never loses a result."""

    def __init__(self, message: str, *, status: int | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GitHubNotPermitted(GitHubError):
    """The token may read but not write (fork PR, read-only token): degrade to the summary."""


class CommentTooLong(GitHubError):
    """GitHub refused a comment body longer than 65,536 characters (422)."""
