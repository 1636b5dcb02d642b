"""The history tables: node-pg-migrate's `pgmigrations`, byte for byte, and hmig's own.

`pgmigrations` is created only when missing and written exactly as node-pg-migrate writes it,
so a database it (or the team's runner) migrated is adopted as it is. hmig's tables
(`hmig_meta`, `hmig_history`, `hmig_progress`) sit beside it in the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import sql

from hmig import __version__
from hmig.errors import Refused
from hmig.model import (
    Applied,
    BackupArtifact,
    History,
    MigrationFile,
    Recorded,
    RunContext,
    StatementProgress,
)
from hmig.postgres._queries import query
from hmig.postgres.connection import PgSession

# The layout of hmig's tables that this release reads and writes, recorded in hmig_meta when
# it creates them. A later release that changes them raises it and migrates them.
TABLES_VERSION = 1


class HistoryTables:
    """Reads and writes the history of one schema; implements the core's `HistoryWriter`."""

    def __init__(
        self,
        session: PgSession,
        *,
        schema: str,
        table: str,
        renamed: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._schema = schema
        self._table = table
        # `migrations.renamed`: a row under an old name is the new name's row.
        self._renamed = dict(renamed or {})

    @property
    def progress_table(self) -> str:
        """`hmig_progress` as SQL a person runs by hand, in advice: schema-qualified."""
        return f"{sql.Identifier(self._schema).as_string()}.hmig_progress"

    def _q(self, name: str) -> sql.SQL:
        return query(name, schema=self._schema, table=self._table)

    def read(self) -> History:
        """Everything recorded; empty when the tables do not exist yet (nothing is created)."""
        names = {"schema": self._schema, "table": self._table}
        history_exists, hmig_exists = self._session.fetch(self._q("history_table_exists"), names)[0]
        if not history_exists:
            return History(applied=(), table_exists=False)
        applied = tuple(
            Applied(id=row[0], name=row[1], run_on=row[2])
            for row in self._session.fetch(self._q("read_applied"))
        )
        if not hmig_exists:
            return History(applied=applied)
        self._check_version()
        recorded = {
            row[0]: Recorded(
                name=row[0],
                checksum=row[1],
                adopted=row[2],
                applied_by=row[3],
                hmig_version=row[4],
                recorded_at=row[5],
            )
            for row in self._session.fetch(self._q("read_recorded"))
        }
        progress = tuple(
            StatementProgress(
                migration=row[0], index=row[1], checksum=row[2], state=row[3], error=row[4]
            )
            for row in self._session.fetch(self._q("read_progress"))
        )
        return History(applied=applied, recorded=recorded, progress=progress)

    def _check_version(self) -> None:
        """Refuse tables a newer hmig laid out: this one could misread or damage them."""
        rows = self._session.fetch(self._q("read_schema_version"))
        recorded = str(rows[0][0]) if rows else str(TABLES_VERSION)  # ensure() writes it again
        hint = (
            "Run the hmig release that last migrated this database, or a newer one (in CI, the "
            "Action's tag)."
        )
        if not recorded.isdigit():
            raise Refused(
                f"hmig_meta in schema {self._schema!r} gives schema_version {recorded!r}, which "
                f"this hmig ({__version__}) cannot read",
                hint=hint,
            )
        if int(recorded) > TABLES_VERSION:
            raise Refused(
                f"hmig's tables in schema {self._schema!r} are at version {recorded}, written "
                f"by a newer hmig; this one ({__version__}) knows version {TABLES_VERSION}",
                hint=hint,
            )

    def ensure(self) -> None:
        """Create what is missing, inside the caller's transaction and under the lock."""
        names = {"schema": self._schema, "table": self._table}
        history_exists, _ = self._session.fetch(self._q("history_table_exists"), names)[0]
        if self._schema != "public":
            self._session.run(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
            )
        if not history_exists:
            self._session.run(self._q("create_history_table"))
        elif not self._session.fetch(self._q("history_has_primary_key"), names)[0][0]:
            self._session.run(self._q("add_history_primary_key"))
        self._session.run(self._q("create_hmig_tables"))
        self._session.run(self._q("init_schema_version"), {"version": str(TABLES_VERSION)})

    def adopt(
        self, migrations: dict[str, MigrationFile], history: History, context: RunContext
    ) -> list[str]:
        """Record checksums of rows another tool wrote, marked adopted (unverified)."""
        adopted = []
        for row in history.applied:
            migration = self._migration_of(row.name, migrations)
            if migration is None or row.name in history.recorded:
                continue
            self._session.run(
                self._q("adopt_recorded"),
                {
                    "name": row.name,
                    "checksum": migration.checksum,
                    "kind": migration.kind.value,
                    "applied_by": context.actor,
                    "hmig_version": context.hmig_version,
                },
            )
            self._audit("adopt", row.name, migration.checksum, "written by another tool", context)
            adopted.append(row.name)
        return adopted

    # -- HistoryWriter port ------------------------------------------------------------------

    def record_applied(
        self, *, migration: MigrationFile, duration_ms: float, context: RunContext
    ) -> None:
        """The `pgmigrations` row, hmig's record and the audit entry, in one statement."""
        self._session.run(
            self._q("record_applied"),
            {
                "name": migration.name,
                "checksum": migration.checksum,
                "kind": migration.kind.value,
                "applied_by": context.actor,
                "commit": context.commit,
                "run_id": context.run_id,
                "duration_ms": round(duration_ms, 3),
                "hmig_version": context.hmig_version,
            },
        )

    def record_applied_batch(
        self, *, applied: Sequence[tuple[MigrationFile, float]], context: RunContext
    ) -> None:
        """`transaction: all`: every row of the batch in one statement, in order."""
        self._session.run(
            self._q("record_applied_batch"),
            {
                "names": [m.name for m, _ in applied],
                "kinds": [m.kind.value for m, _ in applied],
                "checksums": [m.checksum for m, _ in applied],
                "durations": [round(ms, 3) for _, ms in applied],
                "applied_by": context.actor,
                "commit": context.commit,
                "run_id": context.run_id,
                "hmig_version": context.hmig_version,
            },
        )

    def record_reverted(self, *, migration: MigrationFile, context: RunContext) -> None:
        """Delete the history rows, in the rollback's own transaction, and log it."""
        names = {"names": self._aliases(migration.name)}
        self._session.run(self._q("delete_applied"), names)
        self._session.run(self._q("delete_recorded"), names)
        self._audit("rollback", migration.name, migration.checksum, None, context)

    def record_baseline(self, *, migration: MigrationFile, context: RunContext) -> None:
        """Record a migration as applied without running it (`hmig baseline`)."""
        self._session.run(self._q("insert_baseline"), {"name": migration.name})
        self._session.run(
            self._q("adopt_recorded"),
            {
                "name": migration.name,
                "checksum": migration.checksum,
                "kind": migration.kind.value,
                "applied_by": context.actor,
                "hmig_version": context.hmig_version,
            },
        )
        self._audit("baseline", migration.name, migration.checksum, "recorded, not run", context)

    def accept_checksum(
        self, *, name: str, checksum: str, detail: str, context: RunContext
    ) -> None:
        """`hmig repair`: take the file's current checksum as the applied one, and log who."""
        self._session.run(
            self._q("accept_checksum"),
            {
                "name": name,
                "checksum": checksum,
                "applied_by": context.actor,
                "hmig_version": context.hmig_version,
            },
        )
        self._audit("repair", name, checksum, detail, context)

    def remove_row(self, *, row_id: int, name: str, detail: str, context: RunContext) -> None:
        """`hmig repair`: delete one history row (by id) that no file explains, or a duplicate."""
        self._session.run(self._q("remove_history_row"), {"id": row_id, "name": name})
        self._audit("repair", name, None, f"removed the history row: {detail}", context)

    def remap_row(
        self, *, row_id: int, name: str, new_name: str, detail: str, context: RunContext
    ) -> None:
        """`hmig repair`: a row whose file was renamed now names the file."""
        self._session.run(
            self._q("remap_history_row"), {"id": row_id, "name": name, "new_name": new_name}
        )
        self._audit("repair", new_name, None, f"re-mapped from {name}: {detail}", context)

    def verify(self, *, names: Sequence[str], context: RunContext) -> list[str]:
        """A schema drift check passed: these adopted rows are verified. Returns those marked."""
        rows = self._session.fetch(self._q("verify_recorded"), {"names": list(names)})
        for name, checksum in rows:
            detail = "verified: a schema drift check found the live schema as the files build it"
            self._audit("adopt", name, checksum, detail, context)
        return [row[0] for row in rows]

    def record_backup(self, *, artifact: BackupArtifact, context: RunContext) -> None:
        """Log the backup taken before migrations, so the audit says which file to restore."""
        detail = (
            f"{artifact.path} ({artifact.bytes} bytes, {artifact.mode}, {artifact.format}, "
            f"verified: {artifact.verified}, pg_dump {artifact.pg_dump_version}, "
            f"PostgreSQL {artifact.server_version}, {artifact.duration_ms:.0f} ms)"
        )
        self._audit("backup", artifact.path.name, artifact.sha256, detail, context)

    def _migration_of(
        self, row_name: str, migrations: Mapping[str, MigrationFile]
    ) -> MigrationFile | None:
        base = row_name.removesuffix(".up")
        new = self._renamed.get(row_name) or self._renamed.get(base)
        return (
            migrations.get(row_name)
            or migrations.get(base)
            or (migrations.get(new) if new is not None else None)
        )

    def _aliases(self, name: str) -> list[str]:
        """Every name a row of this migration may have: its own, `.up`, renamed-from names."""
        olds = [old for old, new in self._renamed.items() if new == name]
        return [alias for n in (name, *olds) for alias in (n, f"{n}.up")]

    def _audit(
        self,
        action: str,
        name: str,
        checksum: str | None,
        detail: str | None,
        context: RunContext,
    ) -> None:
        self._session.run(
            self._q("insert_audit"),
            {
                "action": action,
                "name": name,
                "checksum": checksum,
                "detail": detail,
                "actor": context.actor,
                "commit": context.commit,
                "run_id": context.run_id,
                "hmig_version": context.hmig_version,
            },
        )

    def record_statement(
        self, *, migration: str, index: int, checksum: str, state: str, error: str | None = None
    ) -> None:
        """Progress of a non-transactional statement, committed at once (autocommit)."""
        self._session.run(
            self._q("upsert_progress"),
            {
                "name": migration,
                "index": index,
                "checksum": checksum,
                "state": state,
                "error": error,
            },
        )

    def clear_progress(self, *, migration: str) -> None:
        """Drop the progress rows of a migration now recorded as applied."""
        self._session.run(self._q("clear_progress"), {"name": migration})
