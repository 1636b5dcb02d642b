"""The process environment → `Settings`, read once at the entry point.

Nothing below the entry points reads `os.environ`. Secrets (passwords inside URLs,
`DB_PASSWORD`) are kept out of `repr` and listed by `secrets()` so every output can mask them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo as pg_conninfo

from hmig.errors import ConfigurationError
from hmig.model import Environment

_DB_VARS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD")


@dataclass(frozen=True, slots=True)
class Settings:
    """What hmig reads from the process environment."""

    environ: Mapping[str, str] = field(repr=False)
    github_actor: str | None = None
    github_sha: str | None = None
    github_run_id: str | None = None

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
        )

    def secrets(self) -> list[str]:
        """Every password hmig may have seen: they never appear in any output."""
        found = [self.environ.get("DB_PASSWORD", ""), self.environ.get("PGPASSWORD", "")]
        for value in self.environ.values():
            if "://" in value or "password=" in value:
                found.append(_password_of(value))
        return sorted({s for s in found if s and len(s) >= 3}, key=len, reverse=True)


def conninfo_for(environment: Environment, settings: Settings) -> str:
    """The connection string for a non-embedded environment.

    `database.url_env` alone decides when the manifest gives it; otherwise `DATABASE_URL`, then
    the team's `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/`DB_PASSWORD`.
    """
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
        return value
    url = settings.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    present = {k: settings.environ[k] for k in _DB_VARS if settings.environ.get(k)}
    if "DB_HOST" not in present and "DB_NAME" not in present:
        raise ConfigurationError(
            f"environment {environment.name!r} has no database: the manifest gives none, and "
            "neither DATABASE_URL nor DB_HOST/DB_NAME is set",
            hint="Add database: {url_env: NAME} to the environment in hmig.yml, or set "
            "DATABASE_URL.",
        )
    try:
        return pg_conninfo.make_conninfo(
            host=present.get("DB_HOST", "localhost"),
            port=present.get("DB_PORT", "5432"),
            dbname=present.get("DB_NAME"),
            user=present.get("DB_USER"),
            password=present.get("DB_PASSWORD"),
        )
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"DB_* variables do not form a connection: {exc}") from exc


def _password_of(value: str) -> str:
    try:
        return str(pg_conninfo.conninfo_to_dict(value).get("password") or "")
    except psycopg.ProgrammingError:
        return ""
