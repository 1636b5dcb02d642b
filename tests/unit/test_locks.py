"""hmig.locks: which tables a statement locks, at which level, and what it does to them."""

from __future__ import annotations

import pytest

from hmig.locks import (
    ACCESS_EXCLUSIVE,
    ACCESS_SHARE,
    EXCLUSIVE,
    ROW_EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    TableLock,
    analyse,
    blocks_reads,
    blocks_writes,
    strength,
    touched_tables,
)

AE, SUE, SRE = ACCESS_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE

# (sql, {table: (level, flags)}) where flags is a string of: r rewrites, s scans, i builds an
# index, c creates. Levels follow the PostgreSQL 15 docs, "Table-Level Locks" and ALTER TABLE.
CASES: list[tuple[str, dict[str, tuple[str, str]]]] = [
    # ALTER TABLE: most forms take ACCESS EXCLUSIVE.
    ("ALTER TABLE patients ADD COLUMN note text", {"patients": (AE, "")}),
    ("ALTER TABLE patients ADD COLUMN n int NOT NULL DEFAULT 0", {"patients": (AE, "")}),
    ("ALTER TABLE patients ADD COLUMN at timestamptz DEFAULT now()", {"patients": (AE, "")}),
    ("ALTER TABLE patients ADD COLUMN k int DEFAULT (1 + 2) * 3", {"patients": (AE, "")}),
    ("ALTER TABLE patients ADD COLUMN u uuid DEFAULT gen_random_uuid()", {"patients": (AE, "r")}),
    ("ALTER TABLE patients ADD COLUMN r float8 DEFAULT random()", {"patients": (AE, "r")}),
    ("ALTER TABLE patients ADD COLUMN id2 bigserial", {"patients": (AE, "r")}),
    (
        "ALTER TABLE patients ADD COLUMN i bigint GENERATED ALWAYS AS IDENTITY",
        {"patients": (AE, "r")},
    ),
    (
        "ALTER TABLE patients ADD COLUMN g int GENERATED ALWAYS AS (id * 2) STORED",
        {"patients": (AE, "r")},
    ),
    ("ALTER TABLE patients ADD COLUMN n int NOT NULL", {"patients": (AE, "s")}),
    ("ALTER TABLE patients ADD COLUMN e text UNIQUE", {"patients": (AE, "i")}),
    ("ALTER TABLE patients ALTER COLUMN age TYPE bigint", {"patients": (AE, "r")}),
    (
        "ALTER TABLE patients ALTER COLUMN name TYPE text USING upper(name)",
        {"patients": (AE, "r")},
    ),
    ("ALTER TABLE patients ALTER COLUMN name SET NOT NULL", {"patients": (AE, "s")}),
    ("ALTER TABLE patients ALTER COLUMN name DROP NOT NULL", {"patients": (AE, "")}),
    ("ALTER TABLE patients ALTER COLUMN name SET DEFAULT 'x'", {"patients": (AE, "")}),
    ("ALTER TABLE patients DROP COLUMN note", {"patients": (AE, "")}),
    ("ALTER TABLE patients RENAME COLUMN a TO b", {"patients": (AE, "")}),
    ("ALTER TABLE patients RENAME TO people", {"patients": (AE, "")}),
    ("ALTER TABLE patients SET SCHEMA archive", {"patients": (AE, "")}),
    ("ALTER TABLE patients SET LOGGED", {"patients": (AE, "r")}),
    ("ALTER TABLE patients SET UNLOGGED", {"patients": (AE, "r")}),
    ("ALTER TABLE patients SET TABLESPACE fast", {"patients": (AE, "r")}),
    ("ALTER TABLE patients ADD CONSTRAINT c CHECK (age > 0)", {"patients": (AE, "s")}),
    ("ALTER TABLE patients ADD CONSTRAINT c CHECK (age > 0) NOT VALID", {"patients": (AE, "")}),
    ("ALTER TABLE patients ADD PRIMARY KEY (id)", {"patients": (AE, "i")}),
    ("ALTER TABLE patients ADD CONSTRAINT u UNIQUE USING INDEX u_idx", {"patients": (AE, "")}),
    (
        "ALTER TABLE visits ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES patients (id)",
        {"visits": (SRE, "s"), "patients": (SRE, "s")},
    ),
    (
        "ALTER TABLE visits ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES clinic.patients "
        "NOT VALID",
        {"visits": (SRE, ""), "clinic.patients": (SRE, "")},
    ),
    ("ALTER TABLE visits VALIDATE CONSTRAINT fk", {"visits": (SUE, "s")}),
    ("ALTER TABLE patients ALTER COLUMN age SET STATISTICS 500", {"patients": (SUE, "")}),
    ("ALTER TABLE patients SET (fillfactor = 70)", {"patients": (SUE, "")}),
    ("ALTER TABLE patients SET (autovacuum_enabled = false)", {"patients": (SUE, "")}),
    ("ALTER TABLE patients CLUSTER ON patients_pkey", {"patients": (SUE, "")}),
    ("ALTER TABLE patients DISABLE TRIGGER audit", {"patients": (SRE, "")}),
    (
        "ALTER TABLE patients ADD COLUMN x int, ALTER COLUMN age TYPE bigint, "
        "SET (fillfactor = 50)",
        {"patients": (AE, "r")},
    ),
    (
        "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM (1) TO (9)",
        {"events": (SUE, ""), "events_2024": (AE, "s")},
    ),
    (
        "ALTER TABLE events DETACH PARTITION events_2023",
        {"events": (AE, ""), "events_2023": (AE, "")},
    ),
    (
        "ALTER TABLE events DETACH PARTITION events_2023 CONCURRENTLY",
        {"events": (SUE, ""), "events_2023": (SUE, "")},
    ),
    ("ALTER INDEX patients_name_idx RENAME TO people_name_idx", {"patients_name_idx": (SUE, "")}),
    # Indexes.
    ("CREATE INDEX ON patients (name)", {"patients": (SHARE, "i")}),
    ("CREATE UNIQUE INDEX u ON clinic.patients (mrn)", {"clinic.patients": (SHARE, "i")}),
    ("CREATE INDEX CONCURRENTLY ON patients (name)", {"patients": (SUE, "i")}),
    ("DROP INDEX patients_name_idx", {"patients_name_idx": (AE, "")}),
    ("DROP INDEX CONCURRENTLY patients_name_idx", {"patients_name_idx": (SUE, "")}),
    ("REINDEX TABLE patients", {"patients": (SHARE, "i")}),
    ("REINDEX INDEX CONCURRENTLY patients_pkey", {"patients_pkey": (SUE, "i")}),
    # Maintenance.
    ("CLUSTER patients USING patients_pkey", {"patients": (AE, "r")}),
    ("VACUUM FULL patients", {"patients": (AE, "r")}),
    ("VACUUM (ANALYZE) patients", {"patients": (SUE, "")}),
    ("ANALYZE patients", {"patients": (SUE, "")}),
    ("REFRESH MATERIALIZED VIEW stats", {"stats": (AE, "r")}),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY stats", {"stats": (EXCLUSIVE, "")}),
    # Data.
    ("INSERT INTO audit (x) VALUES (1)", {"audit": (ROW_EXCLUSIVE, "")}),
    (
        "INSERT INTO archive SELECT * FROM patients WHERE id < 10",
        {"archive": (ROW_EXCLUSIVE, ""), "patients": (ACCESS_SHARE, "")},
    ),
    (
        "WITH old AS (SELECT id FROM patients) DELETE FROM visits USING old "
        "WHERE visits.pid = old.id",
        {"visits": (ROW_EXCLUSIVE, ""), "patients": (ACCESS_SHARE, "")},
    ),
    ("UPDATE patients SET name = lower(name)", {"patients": (ROW_EXCLUSIVE, "")}),
    ("SELECT count(*) FROM patients", {"patients": (ACCESS_SHARE, "")}),
    ("SELECT * FROM patients FOR UPDATE", {"patients": (ROW_SHARE, "")}),
    ("TRUNCATE patients, visits", {"patients": (AE, ""), "visits": (AE, "")}),
    ("LOCK TABLE patients", {"patients": (AE, "")}),
    ("LOCK TABLE patients IN SHARE ROW EXCLUSIVE MODE", {"patients": (SRE, "")}),
    ("COMMENT ON COLUMN clinic.patients.name IS 'x'", {"clinic.patients": (SUE, "")}),
    ("CREATE STATISTICS s ON a, b FROM patients", {"patients": (SUE, "")}),
    ("CREATE POLICY p ON patients USING (true)", {"patients": (AE, "")}),
    ("DROP TRIGGER audit ON clinic.patients", {"clinic.patients": (AE, "")}),
    ("DROP TABLE old_visits", {"old_visits": (AE, "")}),
    # New tables: created, and their parents or referenced tables locked.
    (
        "CREATE TABLE visits (id int, pid int REFERENCES patients (id))",
        {"visits": (AE, "c"), "patients": (SRE, "")},
    ),
    (
        "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM (9) TO (12)",
        {"events_2025": (AE, "c"), "events": (AE, "")},
    ),
    (
        "CREATE TABLE copy AS SELECT * FROM patients",
        {"copy": (AE, "c"), "patients": (ACCESS_SHARE, "")},
    ),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x", {"mv": (AE, "c")}),
    # Nothing to lock.
    ("CREATE TYPE mood AS ENUM ('ok', 'sad')", {}),
    ("ALTER TYPE mood ADD VALUE 'happy'", {}),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", {}),
    ("SET lock_timeout = '2s'", {}),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto", {}),
    ("GRANT SELECT ON patients TO reader", {}),
]


def _flags(lock: TableLock) -> str:
    return "".join(
        flag
        for flag, on in (
            ("r", lock.rewrites),
            ("s", lock.scans),
            ("i", lock.builds_index),
            ("c", lock.creates),
        )
        if on
    )


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_locks(sql: str, expected: dict[str, tuple[str, str]]) -> None:
    result = analyse(sql)
    assert {lock.table: (lock.level, _flags(lock)) for lock in result.locks} == expected


UNCERTAIN: list[tuple[str, str]] = [
    ("DO $$ BEGIN PERFORM 1; END $$", "DO block"),
    ("SELECT archive_old_visits()", "archive_old_visits()"),
    ("CALL archive()", "CALL"),
    (
        "CREATE TRIGGER audit AFTER INSERT ON patients FOR EACH ROW EXECUTE FUNCTION log()",
        "trigger function log()",
    ),
    ("DELETE FROM patients WHERE id = 1", "cascading foreign keys"),
    ("UPDATE patients SET id = id + 1", "cascading foreign keys"),
    ("TRUNCATE patients CASCADE", "CASCADE"),
    ("DROP TABLE patients CASCADE", "CASCADE"),
    ("DROP TYPE mood CASCADE", "CASCADE"),
    ("ALTER DOMAIN positive ADD CONSTRAINT p CHECK (VALUE > 0)", "domain"),
    ("ALTER EXTENSION postgis UPDATE", "ALTER EXTENSION"),
    ("VACUUM FULL", "every table"),
    ("REINDEX DATABASE hmig", "names no table"),
    ("this is not sql", "cannot be parsed"),
]


@pytest.mark.parametrize(("sql", "reason"), UNCERTAIN, ids=[c[0][:50] for c in UNCERTAIN])
def test_uncertain(sql: str, reason: str) -> None:
    uncertain = analyse(sql).uncertain
    assert uncertain is not None and reason in uncertain


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE patients ADD COLUMN note text",
        "CREATE INDEX ON patients (name)",
        "SELECT count(*), now(), lower('A'), extract(year FROM now()) FROM patients",
        "CREATE TABLE t (id int)",
        "ALTER TABLE visits ADD FOREIGN KEY (pid) REFERENCES patients ON DELETE CASCADE",
    ],
)
def test_certain(sql: str) -> None:
    assert analyse(sql).uncertain is None


def test_caveats_soften_what_the_text_cannot_prove() -> None:
    widen = analyse("ALTER TABLE patients ALTER COLUMN name TYPE varchar(500)").locks[0]
    assert widen.rewrites and widen.caveat and "binary-coercible" in widen.caveat
    to_bigint = analyse("ALTER TABLE patients ALTER COLUMN age TYPE bigint").locks[0]
    assert to_bigint.caveat is None and to_bigint.action == "ALTER COLUMN age TYPE bigint"
    user_default = analyse("ALTER TABLE patients ADD COLUMN c int DEFAULT next_code()").locks[0]
    assert user_default.rewrites and user_default.caveat and "next_code()" in user_default.caveat


def test_actions_name_the_operation() -> None:
    (lock,) = analyse("CREATE INDEX ON patients (name)").locks
    assert lock.action == "CREATE INDEX without CONCURRENTLY"
    (lock,) = analyse("ALTER TABLE p ADD CONSTRAINT c CHECK (a > 0)").locks
    assert lock.action == "ADD CONSTRAINT c CHECK without NOT VALID"
    (lock,) = analyse("ALTER TABLE p ALTER COLUMN a SET NOT NULL").locks
    assert lock.action == "ALTER COLUMN a SET NOT NULL"


def test_several_statements_in_one_string_are_merged() -> None:
    result = analyse("CREATE INDEX ON a (x); ALTER TABLE a ALTER COLUMN x TYPE bigint;")
    (lock,) = result.locks
    assert (lock.level, lock.rewrites, lock.builds_index) == (AE, True, True)


def test_quoted_names_keep_their_case() -> None:
    (lock,) = analyse('ALTER TABLE "Clinic"."Patients" ADD COLUMN x int').locks
    assert lock.table == "Clinic.Patients"


def test_touched_tables_leave_out_reads_and_new_tables() -> None:
    touched = touched_tables(
        [
            "CREATE TABLE visits (id int, pid int REFERENCES patients (id))",
            "CREATE INDEX ON visits (pid)",
            "INSERT INTO visits SELECT id, id FROM patients",
            "ALTER TABLE patients ADD COLUMN seen boolean",
            "SELECT * FROM doctors",
            "ALTER TABLE patients ALTER COLUMN seen SET DEFAULT false",
        ]
    )
    assert touched.tables == ("patients",)
    assert touched.uncertain == (
        "statement 3: triggers and cascading foreign keys on visits may change other tables",
    )


def test_touched_tables_without_doubt() -> None:
    touched = touched_tables(["ALTER TABLE a ADD COLUMN x int", "CREATE INDEX ON b (y)"])
    assert touched.tables == ("a", "b") and touched.uncertain == ()


def test_levels_order_and_conflicts() -> None:
    assert strength(ACCESS_SHARE) == 1 and strength(AE) == 8
    assert [blocks_writes(level) for level in (ROW_EXCLUSIVE, SUE, SHARE, SRE, AE)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert blocks_reads(AE) and not blocks_reads(EXCLUSIVE)
