"""The process environment → `Settings`, read once at the entry point.

Nothing below the entry points reads `os.environ`. Secrets (passwords inside URLs,
`DB_PASSWORD`, the GitHub token) are kept out of `repr` and listed by `secrets()` so every output
can mask them. The Action's inputs arrive as `INPUT_<NAME>` with hyphens kept and every declared
input present, empty when unset (github-actions.md §1.3); `ACTION_INPUTS` is the list a test keeps
identical to `action.yml`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg import conninfo as pg_conninfo

from hmig.errors import ConfigurationError
from hmig.model import Environment

_DB_VARS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")
_SECRET_VARS = ("DB_PASSWORD", "PGPASSWORD", "GITHUB_TOKEN", "INPUT_GITHUB-TOKEN")

ACTION_INPUTS = (
    "command",
    "args",
    "environment",
    "manifest",
    "working-directory",
    "github-token",
    "comment",
    "database-url",
)
_COMMENT_MODES = ("always", "on-change", "never")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://")
_URL_HINT = (
    "Use postgresql://user@host:port/database (password in PGPASSWORD or the URL), or "
    "key=value pairs (host=… dbname=…)."
)


@dataclass(frozen=True, slots=True)
class ActionInputs:
    """The Action's inputs, trimmed as the toolkit trims them; empty means not set."""

    command: str
    args: str
    environment: str | None
    manifest: str
    working_directory: str
    comment: str
    github_token: str = field(repr=False)
    database_url: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class GitHubContext:
    """The `GITHUB_*` variables the runner exports to a Docker action (github-actions.md §1.4)."""

    event_name: str
    event_path: Path | None
    repository: str | None
    sha: str | None
    run_id: str | None
    run_attempt: str | None
    server_url: str
    api_url: str
    workspace: Path
    output_path: Path | None
    summary_path: Path | None

    @property
    def run_url(self) -> str | None:
        """The link to this run, for comments and summaries."""
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What hmig reads from the process environment."""

    environ: Mapping[str, str] = field(repr=False)
    database_url: str | None = field(default=None, repr=False)  # the Action's `database-url`
    github_actor: str | None = None
    github_sha: str | None = None
    github_run_id: str | None = None
    fault: str | None = None  # HMIG_FAULT: a test-only fault point (hmig.faults)

    @classmethod
    def from_process(cls) -> Settings:
        """Read `os.environ` (the only place hmig does)."""
        return cls.from_environ(dict(os.environ))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Build from any mapping, so tests need not touch the real environment."""
        return cls(
            environ=environ,
            github_actor=environ.get("GITHUB_ACTOR") or environ.get("USER") or None,
            github_sha=environ.get("GITHUB_SHA") or None,
            github_run_id=environ.get("GITHUB_RUN_ID") or None,
            fault=environ.get("HMIG_FAULT") or None,
        )

    def with_database_url(self, url: str | None) -> Settings:
        """The same settings with the Action's `database-url` taking precedence."""
        return replace(self, database_url=url or None)

    def secrets(self) -> list[str]:
        """Every secret hmig may have seen (passwords, tokens): they never appear in any output."""
        found = [self.environ.get(name, "") for name in _SECRET_VARS]
        for value in (*self.environ.values(), self.database_url or ""):
            if "://" in value or "password=" in value:
                found.append(_password_of(value))
        return sorted({s for s in found if s and len(s) >= 3}, key=len, reverse=True)

    def connection_strings(self) -> list[str]:
        """Every value that looks like a DSN: the Action masks them whole, not just the password."""
        values = (*self.environ.values(), self.database_url or "")
        return sorted({v.strip() for v in values if _looks_like_dsn(v)}, key=len, reverse=True)

    def action_inputs(self) -> ActionInputs:
        """The Action's inputs, validated; a bad value names the input."""
        raw = {
            name: self.environ.get(f"INPUT_{name.upper()}", "").strip() for name in ACTION_INPUTS
        }
        comment = raw["comment"] or "on-change"
        if comment not in _COMMENT_MODES:
            raise ConfigurationError(
                f"input `comment` is {comment!r}",
                hint=f"Use one of: {', '.join(_COMMENT_MODES)}.",
            )
        return ActionInputs(
            command=raw["command"] or "plan",
            args=raw["args"],
            environment=raw["environment"] or None,
            manifest=raw["manifest"] or "hmig.yml",
            working_directory=raw["working-directory"] or ".",
            comment=comment,
            github_token=raw["github-token"] or self.environ.get("GITHUB_TOKEN", "").strip(),
            database_url=raw["database-url"] or None,
        )

    def github(self) -> GitHubContext:
        """Where the Action runs; defaults are github.com's (GHES sets its own URLs)."""
        env = self.environ

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value) if value else None

        return GitHubContext(
            event_name=env.get("GITHUB_EVENT_NAME", "").strip(),
            event_path=path("GITHUB_EVENT_PATH"),
            repository=env.get("GITHUB_REPOSITORY") or None,
            sha=env.get("GITHUB_SHA") or None,
            run_id=env.get("GITHUB_RUN_ID") or None,
            run_attempt=env.get("GITHUB_RUN_ATTEMPT") or None,
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            workspace=path("GITHUB_WORKSPACE") or Path.cwd(),
            output_path=path("GITHUB_OUTPUT"),
            summary_path=path("GITHUB_STEP_SUMMARY"),
        )


def conninfo_for(environment: Environment, settings: Settings) -> str:
    """The connection string for a non-embedded environment.

    The Action's `database-url` input comes first; then `database.url_env` alone decides when the
    manifest gives it; otherwise `DATABASE_URL`, then
    the team's `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/`DB_PASSWORD`. A value that is not a
    PostgreSQL connection string is refused naming where it came from: that is what a person
    needs to fix it, and the value itself may hold a password, so it is never shown.
    """
    if settings.database_url:
        return _checked(
            settings.database_url,
            source="the Action's input `database-url`",
            environ=settings.environ,
        )
    spec = environment.database
    if spec is not None and spec.url_env:
        value = settings.environ.get(spec.url_env, "").strip()
        if not value:
            state = "empty" if spec.url_env in settings.environ else "not set"
            raise ConfigurationError(
                f"environment {environment.name!r} reads its database URL from "
                f"${spec.url_env}, which is {state}",
                hint=f"Set {spec.url_env} to postgresql://user@host:port/database "
                "(in GitHub Actions, from a secret).",
            )
        return _checked(value, source=f"${spec.url_env}", environ=settings.environ)
    url = settings.environ.get("DATABASE_URL", "").strip()
    if url:
        return _checked(url, source="$DATABASE_URL", environ=settings.environ)
    return _from_db_vars(environment, settings.environ)


def _checked(value: str, *, source: str, environ: Mapping[str, str]) -> str:
    """`value` if libpq can parse it and it names a database; else an error naming `source`.

    Without a database name libpq connects to the database named like the user: as with the
    `DB_*` variables, hmig does not migrate that one on a guess. libpq's other ways of naming
    it count: `PGDATABASE` when the string has no `dbname` at all (an empty one overrides it),
    and a connection service (`service=`, `PGSERVICE`), whose file hmig does not read.
    """
    scheme = _SCHEME.match(value)
    if scheme is not None and scheme.group(1).lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"{source} holds a {scheme.group(1)}:// URL; hmig connects to PostgreSQL only",
            hint=_URL_HINT,
        )
    try:
        parts = pg_conninfo.conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        # libpq's message quotes the value, password included: it is not shown.
        raise ConfigurationError(
            f"{source} is not a PostgreSQL connection string (libpq cannot parse it)",
            hint=_URL_HINT,
        ) from exc
    named = parts.get("dbname") or ("dbname" not in parts and environ.get("PGDATABASE"))
    if not (named or parts.get("service") or environ.get("PGSERVICE")):
        raise ConfigurationError(
            f"{source} names no database: libpq would connect to the one named like the user, "
            "and hmig does not guess which database to migrate",
            hint=_URL_HINT,
        )
    return value


def _from_db_vars(environment: Environment, environ: Mapping[str, str]) -> str:
    """The team's `DB_*` variables; a missing `DB_NAME` or a bad `DB_PORT` is named.

    Without a database name libpq connects to the one named like the user (PostgreSQL docs,
    "Parameter Key Words": dbname): a partial set of variables must not migrate that one.
    """
    present = {
        name: value if name == "DB_PASSWORD" else value.strip()
        for name in _DB_VARS
        if (value := environ.get(name, "")).strip()
    }
    if "DB_HOST" not in present and "DB_NAME" not in present:
        raise ConfigurationError(
            f"environment {environment.name!r} has no database: the manifest gives none, and "
            "neither DATABASE_URL nor DB_HOST/DB_NAME is set",
            hint="Add database: {url_env: NAME} to the environment in hmig.yml, or set "
            "DATABASE_URL.",
        )
    if "DB_NAME" not in present:
        given = "/".join(name for name in _DB_VARS if name in present and name != "DB_PASSWORD")
        raise ConfigurationError(
            f"{given} {'are' if '/' in given else 'is'} set but DB_NAME is not: hmig does not "
            "guess which database to migrate",
            hint="Set DB_NAME to the database's name (or use DATABASE_URL).",
        )
    port = present.get("DB_PORT", "5432")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigurationError(
            f"DB_PORT is {port!r}, not a port number (1 to 65535)",
            hint="Set DB_PORT to the server's TCP port, 5432 by default, or unset it.",
        )
    try:
        return pg_conninfo.make_conninfo(
            host=present.get("DB_HOST", "localhost"),
            port=port,
            dbname=present["DB_NAME"],
            user=present.get("DB_USER"),
            password=present.get("DB_PASSWORD"),
        )
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"DB_* variables do not form a connection: {exc}") from exc


def _input_var(name: str) -> str:
    """The runner's name for an input: upper case, spaces to `_`, hyphens kept (§1.3)."""
    return "INPUT_" + name.replace(" ", "_").upper()


def _looks_like_dsn(value: str) -> bool:
    text = value.strip()
    return text.startswith(("postgres://", "postgresql://")) or (
        "password=" in text and ("host=" in text or "dbname=" in text)
    )


def _password_of(value: str) -> str:
    try:
        return str(pg_conninfo.conninfo_to_dict(value).get("password") or "")
    except psycopg.ProgrammingError:
        return ""
