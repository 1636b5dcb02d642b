"""Runs squawk over the pending migrations and maps its findings back to files and lines.

squawk (the `squawk-cli` wheel) runs once per transaction mode for all pending migrations: the
ones hmig runs in a transaction get `--assume-in-transaction`, the others not. Each migration is
written to a temporary file: a `.sql` file as it is on disk with everything outside its up
section blanked (so squawk's line numbers are the file's), a `.js` migration as its rendered
statements, one after the other (so a line maps back to a statement index). squawk is told what
hmig guarantees: the `require-lock-timeout` / `require-statement-timeout` rules are excluded
when the environment sets those timeouts, since hmig sets them in every migration transaction.
This adapter must not decide anything about the findings (that is `hmig.lint`), nor import
another adapter.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmig import binaries, statements
from hmig._subprocess import run
from hmig.errors import HmigError, MigrationFileError
from hmig.model import Finding, Kind, MigrationFile, Rendered

# squawk's rule names (its docs, "Rules"; `squawk --exclude` refuses unknown names).
REQUIRE_LOCK_TIMEOUT = "require-lock-timeout"
REQUIRE_STATEMENT_TIMEOUT = "require-statement-timeout"
_SYNTAX_ERROR = "syntax-error"


@dataclass(frozen=True, slots=True)
class _Input:
    """One migration as squawk sees it, and how to map its lines back."""

    file_name: str
    text: str
    migration: MigrationFile
    spans: tuple[tuple[int, int, int], ...]  # (first line, last line, statement index), 1-based


class Squawk:
    """The squawk linter, behind the core's `Linter` port (`hmig.lint.Linter`)."""

    def __init__(
        self, executable: Path, *, env: Mapping[str, str] | None = None, timeout_s: float = 120.0
    ) -> None:
        self.executable = executable
        self._env = env
        self._timeout_s = timeout_s

    @classmethod
    def find(cls, env: Mapping[str, str]) -> Squawk:
        """The squawk installed with hmig (or `HMIG_SQUAWK`); `ToolMissing` with a hint if none."""
        return cls(binaries.find_squawk(env), env=env)

    def version(self) -> str:
        """`2.70.0`."""
        return binaries.squawk_version(self.executable, env=self._env)

    def lint(
        self,
        pending: Sequence[tuple[MigrationFile, Rendered]],
        *,
        lock_timeout_ms: int,
        statement_timeout_ms: int,
        server_version: str | None = None,
    ) -> tuple[Finding, ...]:
        """Findings of squawk on every pending migration, in file terms."""
        inputs = [
            (_input(position, migration, rendered), rendered.transactional)
            for position, (migration, rendered) in enumerate(pending)
            if migration.problem is None and rendered.statements
        ]
        if not inputs:
            return ()
        excluded = [
            rule
            for rule, guaranteed in (
                (REQUIRE_LOCK_TIMEOUT, lock_timeout_ms > 0),
                (REQUIRE_STATEMENT_TIMEOUT, statement_timeout_ms > 0),
            )
            if guaranteed
        ]
        findings: list[Finding] = []
        with tempfile.TemporaryDirectory(prefix="hmig-squawk-") as folder:
            root = Path(folder)
            # An empty config file: a `.squawk.toml` found by squawk's search upwards from its
            # working directory must not change what hmig asked for.
            config = root / "squawk.toml"
            config.write_text("", encoding="utf-8")
            for item, _ in inputs:
                (root / item.file_name).write_text(item.text, encoding="utf-8", newline="\n")
            for transactional in (True, False):
                group = [item for item, mode in inputs if mode is transactional]
                if group:
                    argv = self._argv(
                        group,
                        config=config,
                        in_transaction=transactional,
                        excluded=excluded,
                        server_version=server_version,
                    )
                    findings.extend(self._run(argv, group, cwd=root))
        return tuple(findings)

    def _argv(
        self,
        group: Sequence[_Input],
        *,
        config: Path,
        in_transaction: bool,
        excluded: Sequence[str],
        server_version: str | None,
    ) -> list[str]:
        argv = [str(self.executable), "--reporter", "json", "--config", str(config)]
        if in_transaction:
            argv.append("--assume-in-transaction")
        if excluded:
            argv.append("--exclude=" + ",".join(excluded))
        if server_version:
            argv.append(f"--pg-version={server_version}")
        return [*argv, *(item.file_name for item in group)]

    def _run(self, argv: Sequence[str], group: Sequence[_Input], *, cwd: Path) -> list[Finding]:
        # squawk reads stdin when it is not a terminal and no path is given; paths are always
        # given, and an empty stdin keeps it from ever waiting on ours.
        completed = run(argv, env=self._env, timeout=self._timeout_s, input=b"", cwd=cwd)
        try:
            violations = json.loads(completed.stdout or "[]")
        except json.JSONDecodeError:
            violations = None
        if not isinstance(violations, list) or completed.returncode not in (0, 1):
            detail = completed.stderr.strip() or completed.stdout.strip()
            raise HmigError(
                f"squawk failed (exit code {completed.returncode}): {detail[:500]}",
                hint=f"Run {argv[0]} --help to check that it works; hmig needs squawk-cli 2.",
            )
        by_name = {item.file_name: item for item in group}
        return [
            _finding(violation, by_name)
            for violation in violations
            if isinstance(violation, dict) and violation.get("file") in by_name
        ]


def read_sources(pending: Sequence[tuple[MigrationFile, Rendered]]) -> dict[str, str]:
    """Each pending `.sql` migration's text by its `path`, for `hmig.lint.check`'s directives."""
    return {
        migration.path: _read(migration)
        for migration, _ in pending
        if migration.kind is Kind.SQL and migration.problem is None
    }


def _read(migration: MigrationFile) -> str:
    """The file as discovery read it: BOM dropped, universal newlines."""
    try:
        return migration.abspath.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationFileError(f"cannot read: {exc}", file=migration.path) from exc


def _input(position: int, migration: MigrationFile, rendered: Rendered) -> _Input:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in migration.name)[:80]
    file_name = f"{position:04d}_{safe}.sql"
    if migration.kind is Kind.SQL:
        return _sql_input(file_name, migration, rendered)
    return _rendered_input(file_name, migration, rendered)


def _sql_input(file_name: str, migration: MigrationFile, rendered: Rendered) -> _Input:
    """The file's text with everything outside the up section blanked, lines kept in place."""
    text = _read(migration)
    # `NAME.up.sql` is all up SQL (node-pg-migrate's SQL strategy), as in discovery.
    whole = migration.abspath.suffix.lower() == ".sql" and migration.abspath.stem.lower().endswith(
        ".up"
    )
    section = statements.Section(text, 0) if whole else statements.up_section(text)
    start, end = section.offset, section.offset + len(section.text)
    kept = _blank(text[:start]) + text[start:end] + _blank(text[end:])
    spans = tuple(
        (s.line, s.line + s.sql.count("\n"), s.index)
        for s in rendered.statements
        if s.line is not None
    )
    return _Input(file_name, kept, migration, spans)


def _rendered_input(file_name: str, migration: MigrationFile, rendered: Rendered) -> _Input:
    """Rendered statements one after the other, a blank line between, each `;`-terminated."""
    lines: list[str] = []
    spans: list[tuple[int, int, int]] = []
    for statement in rendered.statements:
        sql = statement.sql.rstrip()
        sql = sql if sql.endswith(";") else sql + ";"
        first = len(lines) + 1
        lines.extend(sql.split("\n"))
        spans.append((first, len(lines), statement.index))
        lines.append("")
    return _Input(file_name, "\n".join(lines) + "\n", migration, tuple(spans))


def _blank(text: str) -> str:
    return "\n" * text.count("\n")


def _finding(violation: Mapping[str, Any], by_name: Mapping[str, _Input]) -> Finding:
    item = by_name[str(violation["file"])]
    # squawk's JSON reporter counts lines and columns from 0 (its GitHub reporter adds 1).
    line = _int(violation.get("line")) + 1
    column = _int(violation.get("column")) + 1
    rule = str(violation.get("rule_name") or "squawk")
    severity = "error" if str(violation.get("level", "")).lower() == "error" else "warning"
    message = str(violation.get("message") or rule)
    help_text = violation.get("help")
    if rule == _SYNTAX_ERROR:
        # PostgreSQL's own parser (pglast) accepted the file: squawk's parser lags behind, so
        # this only means squawk's rules did not check the migration (squawk skips a file
        # with a syntax error whole).
        severity = "warning"
        message = (
            f"squawk could not parse this statement ({message}), so its rules did not check "
            "this migration"
        )
    is_sql = item.migration.kind is Kind.SQL
    return Finding(
        rule=rule,
        severity=severity,
        message=message,
        help=str(help_text) if help_text else None,
        migration=item.migration.name,
        file=item.migration.path,
        line=line if is_sql else None,
        column=column if is_sql else None,
        statement_index=_statement_at(item.spans, line, sql=is_sql),
        source="squawk",
    )


def _statement_at(spans: Sequence[tuple[int, int, int]], line: int, *, sql: bool) -> int | None:
    """The statement a line belongs to: the last one starting at or before it."""
    index: int | None = None
    for first, last, statement_index in spans:
        if first <= line and (sql or line <= last + 1):
            index = statement_index
    return index


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
