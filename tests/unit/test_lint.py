"""hmig.lint: hmig's rules, ignore comments, policy, squawk findings merged in, fail_on."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from hmig import statements
from hmig.lint import (
    LintReport,
    RelationSize,
    check,
    describe_bytes,
    describe_size,
    tables_to_size,
)
from hmig.lint.directives import Ignore, ignores
from hmig.model import Finding, Kind, LintPolicy, MigrationFile, Rendered, Statement

BIG = RelationSize("patients", rows=2_100_000, bytes=1_503_238_554)  # ≈ 2.1 M rows, 1.4 GB
SMALL = RelationSize("patients", rows=120, bytes=49_152)
SIZES = {"patients": BIG, "visits": RelationSize("visits", rows=50_000, bytes=8 * 1024 * 1024)}


def sql_migration(name: str, text: str) -> tuple[MigrationFile, Rendered, str]:
    text = textwrap.dedent(text).lstrip("\n")
    parsed = statements.split(text, statements.up_section(text))
    migration = MigrationFile(
        name=name,
        path=f"migrations/{name}.sql",
        abspath=Path(f"/nowhere/{name}.sql"),
        kind=Kind.SQL,
        checksum="sha256:0",
        statements=parsed,
    )
    return migration, Rendered(parsed, transactional=True), text


def js_migration(name: str, *sqls: str) -> tuple[MigrationFile, Rendered]:
    migration = MigrationFile(
        name=name,
        path=f"migrations/{name}.js",
        abspath=Path(f"/nowhere/{name}.js"),
        kind=Kind.JS,
        checksum="sha256:0",
    )
    rendered = Rendered(
        tuple(Statement(index=i, sql=sql) for i, sql in enumerate(sqls)), transactional=True
    )
    return migration, rendered


def lint(
    *texts: str,
    sizes: Mapping[str, RelationSize] = SIZES,
    lock_timeout_ms: int = 500,
    policy: LintPolicy | None = None,
    squawk: Sequence[Finding] = (),
) -> LintReport:
    pending = []
    sources = {}
    for number, text in enumerate(texts, start=1):
        migration, rendered, source = sql_migration(f"{number:03d}_m", text)
        pending.append((migration, rendered))
        sources[migration.path] = source
    return check(
        pending,
        squawk=squawk,
        sizes=sizes,
        policy=policy or LintPolicy(),
        lock_timeout_ms=lock_timeout_ms,
        statement_timeout_ms=0,
        sources=sources,
    )


RULE_CASES: list[tuple[str, Mapping[str, RelationSize], int, list[str]]] = [
    ("CREATE INDEX ON patients (name);", SIZES, 500, ["blocking-lock-on-large-table"]),
    ("CREATE INDEX CONCURRENTLY ON patients (name);", SIZES, 500, []),
    ("CREATE INDEX ON patients (name);", {"patients": SMALL}, 500, []),
    ("CREATE INDEX ON new_table (name);", SIZES, 0, []),
    ("ALTER TABLE patients ADD PRIMARY KEY (id);", SIZES, 500, ["blocking-lock-on-large-table"]),
    ("REINDEX TABLE patients;", SIZES, 500, ["blocking-lock-on-large-table"]),
    ("ALTER TABLE patients ALTER COLUMN age TYPE bigint;", SIZES, 500, ["table-rewrite"]),
    (
        "ALTER TABLE patients ADD COLUMN u uuid DEFAULT gen_random_uuid();",
        SIZES,
        500,
        ["table-rewrite"],
    ),
    ("ALTER TABLE patients ADD COLUMN n int DEFAULT 0;", SIZES, 500, []),
    ("VACUUM FULL patients;", SIZES, 500, ["table-rewrite"]),
    ("CLUSTER patients USING patients_pkey;", SIZES, 500, ["table-rewrite"]),
    (
        "ALTER TABLE patients ADD CONSTRAINT c CHECK (age > 0);",
        SIZES,
        500,
        ["full-table-scan-under-lock"],
    ),
    ("ALTER TABLE patients ADD CONSTRAINT c CHECK (age > 0) NOT VALID;", SIZES, 500, []),
    ("ALTER TABLE patients VALIDATE CONSTRAINT c;", SIZES, 500, []),
    (
        "ALTER TABLE patients ALTER COLUMN name SET NOT NULL;",
        SIZES,
        500,
        ["full-table-scan-under-lock"],
    ),
    (
        "ALTER TABLE visits ADD FOREIGN KEY (pid) REFERENCES patients (id);",
        SIZES,
        500,
        ["full-table-scan-under-lock", "full-table-scan-under-lock"],
    ),
    (
        "ALTER TABLE visits ADD FOREIGN KEY (pid) REFERENCES patients (id) NOT VALID;",
        SIZES,
        500,
        [],
    ),
    ("ALTER TABLE patients ADD COLUMN note text;", SIZES, 0, ["no-lock-timeout"]),
    ("ALTER TABLE patients ADD COLUMN note text;", {"patients": SMALL}, 0, ["no-lock-timeout"]),
    ("ALTER TABLE patients ADD COLUMN note text;", SIZES, 500, []),
    ("ALTER TABLE brand_new ADD COLUMN note text;", SIZES, 0, []),
    (
        "CREATE INDEX ON patients (name);",
        SIZES,
        0,
        ["blocking-lock-on-large-table", "no-lock-timeout"],
    ),
    ("CREATE INDEX CONCURRENTLY ON patients (name);", SIZES, 0, []),
    ("ALTER TABLE patients VALIDATE CONSTRAINT c;", SIZES, 0, []),
    (
        "ALTER TABLE patients ALTER COLUMN age TYPE bigint;",
        SIZES,
        0,
        ["table-rewrite", "no-lock-timeout"],
    ),
    ("SELECT count(*) FROM patients;", SIZES, 0, []),
    ("DO $$ BEGIN PERFORM 1; END $$;", SIZES, 0, []),
    ("CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN x int;", SIZES, 0, []),
]


@pytest.mark.parametrize(
    ("sql", "sizes", "lock_timeout_ms", "rules"), RULE_CASES, ids=[c[0][:55] for c in RULE_CASES]
)
def test_rules(
    sql: str, sizes: Mapping[str, RelationSize], lock_timeout_ms: int, rules: list[str]
) -> None:
    report = lint(sql, sizes=sizes, lock_timeout_ms=lock_timeout_ms)
    assert [f.rule for f in report.findings] == rules
    assert report.unused_ignores == ()


def test_message_states_the_consequence_with_the_size() -> None:
    (finding,) = lint("-- Up Migration\n\nCREATE INDEX patients_name ON patients (name);").findings
    assert finding.message == (
        "CREATE INDEX without CONCURRENTLY blocks writes to patients (≈ 2.1 M rows, 1.4 GB) "
        "while it builds"
    )
    assert finding.help is not None and "CONCURRENTLY" in finding.help
    assert (finding.severity, finding.source) == ("error", "hmig")
    assert (finding.migration, finding.file) == ("001_m", "migrations/001_m.sql")
    assert (finding.line, finding.column, finding.statement_index) == (3, 1, 0)


def test_rewrite_and_scan_messages() -> None:
    rewrite, scan = lint(
        """
        ALTER TABLE patients ALTER COLUMN age TYPE bigint;
        ALTER TABLE patients ADD CONSTRAINT adult CHECK (age >= 18);
        """
    ).findings
    assert rewrite.message == (
        "ALTER COLUMN age TYPE bigint rewrites patients (≈ 2.1 M rows, 1.4 GB) under an ACCESS "
        "EXCLUSIVE lock: its reads and writes wait until every row is copied"
    )
    assert scan.message == (
        "ADD CONSTRAINT adult CHECK without NOT VALID reads every row of patients (≈ 2.1 M rows, "
        "1.4 GB) under an ACCESS EXCLUSIVE lock: its reads and writes wait until the scan ends"
    )
    assert scan.help is not None and "NOT VALID" in scan.help and scan.line == 2


def test_what_the_text_cannot_prove_is_a_warning() -> None:
    (widen,) = lint("ALTER TABLE patients ALTER COLUMN name TYPE varchar(500);").findings
    assert widen.rule == "table-rewrite" and widen.severity == "warning"
    assert widen.help is not None and widen.help.startswith("Not always: no rewrite")
    (not_null,) = lint("ALTER TABLE patients ALTER COLUMN name SET NOT NULL;").findings
    assert not_null.severity == "warning" and "IS NOT NULL" in (not_null.help or "")


def test_no_lock_timeout_message_and_set_in_the_migration() -> None:
    (finding,) = lint("ALTER TABLE patients DROP COLUMN note;", lock_timeout_ms=0).findings
    assert finding.rule == "no-lock-timeout" and finding.severity == "warning"
    assert finding.message.startswith(
        "DROP COLUMN note waits for an ACCESS EXCLUSIVE lock on patients with no lock_timeout: "
        "while it waits behind any open transaction, every query on it queues behind it"
    )
    (index, _) = lint("CREATE INDEX ON patients (name);", lock_timeout_ms=0).findings[::-1]
    assert index.message.endswith("every write on it queues behind it")
    fixed = lint(
        """
        SET LOCAL lock_timeout = '2s';
        ALTER TABLE patients DROP COLUMN note;
        SET lock_timeout = 0;
        ALTER TABLE patients DROP COLUMN other;
        """,
        lock_timeout_ms=0,
    )
    assert [(f.rule, f.line) for f in fixed.findings] == [("no-lock-timeout", 4)]
    # RESET goes back to the server's default, which hmig cannot see: taken as none.
    reset = lint("RESET lock_timeout; ALTER TABLE patients DROP COLUMN x;", lock_timeout_ms=500)
    assert [f.rule for f in reset.findings] == ["no-lock-timeout"]


def test_never_analysed_size_is_worded() -> None:
    size = RelationSize("patients", rows=36_047, bytes=3_784_704, estimated=True)
    (finding,) = lint("CREATE INDEX ON patients (name);", sizes={"patients": size}).findings
    assert "patients (≈ 36 k rows (estimated from its size: never analysed), 3.6 MB)" in (
        finding.message
    )


IGNORE_CASES = [
    # (migration text, rules reported, unused ignore rules with their lines)
    (
        "-- hmig:ignore blocking-lock-on-large-table\nCREATE INDEX ON patients (name);",
        [],
        [],
    ),
    (
        "CREATE INDEX ON patients (name); -- hmig:ignore blocking-lock-on-large-table",
        [],
        [],
    ),
    (
        "-- hmig:ignore table-rewrite, blocking-lock-on-large-table\n-- a reason\n"
        "CREATE INDEX ON patients (name);",
        [],
        [("table-rewrite", 1)],
    ),
    (
        "-- hmig:ignore blocking-lock-on-large-table\n\nCREATE INDEX ON patients (name);",
        ["blocking-lock-on-large-table"],
        # A blank line separates the comment from the statement: it applies to nothing.
        [("blocking-lock-on-large-table", 1)],
    ),
    (
        "-- Up Migration\nSELECT 1;\n-- hmig:ignore table-rewrite\n"
        "-- Down Migration\n-- hmig:ignore anything\nDROP TABLE t;",
        [],
        [("table-rewrite", 3)],  # the down section is not linted, nor are its comments
    ),
    (
        "CREATE INDEX ON patients (name);\n-- hmig:ignore blocking-lock-on-large-table\n"
        "CREATE INDEX ON patients (born);",
        ["blocking-lock-on-large-table"],
        [],
    ),
    (
        "-- hmig:ignore no-such-rule\nCREATE INDEX CONCURRENTLY ON patients (name);",
        [],
        [("no-such-rule", 1)],
    ),
    (
        "CREATE INDEX ON patients (a,\n  -- hmig:ignore blocking-lock-on-large-table\n  b);",
        [],
        [],
    ),
]


@pytest.mark.parametrize(("text", "rules", "unused"), IGNORE_CASES)
def test_ignore_comments(text: str, rules: list[str], unused: list[tuple[str, int]]) -> None:
    report = lint(text)
    assert [f.rule for f in report.findings] == rules
    assert [(f.message.split()[2], f.line) for f in report.unused_ignores] == unused
    assert all(f.rule == "unused-ignore" and f.severity == "warning" for f in report.unused_ignores)


def test_ignore_comments_apply_to_squawk_findings_too() -> None:
    migration, rendered, text = sql_migration(
        "001_m", "-- hmig:ignore prefer-robust-stmts\nCREATE TABLE t (id int);\n"
    )
    robust = _squawk("prefer-robust-stmts", migration, line=2, index=0)
    report = check(
        [(migration, rendered)],
        squawk=[robust],
        sizes={},
        policy=LintPolicy(),
        lock_timeout_ms=0,
        statement_timeout_ms=0,
        sources={migration.path: text},
    )
    assert report.findings == () and report.unused_ignores == ()


def test_policy_ignore_drops_rules_of_both_sources() -> None:
    migration, rendered, _ = sql_migration("001_m", "CREATE INDEX ON patients (name);")
    squawk = [_squawk("prefer-robust-stmts", migration, line=1, index=0)]
    policy = LintPolicy(ignore=("blocking-lock-on-large-table", "prefer-robust-stmts"))
    report = check(
        [(migration, rendered)],
        squawk=squawk,
        sizes=SIZES,
        policy=policy,
        lock_timeout_ms=500,
        statement_timeout_ms=0,
    )
    assert report.findings == ()


def test_unused_ignore_can_itself_be_ignored_by_policy() -> None:
    report = lint(
        "-- hmig:ignore table-rewrite\nSELECT 1;", policy=LintPolicy(ignore=("unused-ignore",))
    )
    assert report.unused_ignores == ()


def test_squawk_findings_replaced_by_hmig_findings_on_the_same_statement() -> None:
    migration, rendered, _ = sql_migration(
        "001_m", "CREATE INDEX ON patients (name);\nCREATE INDEX ON doctors (name);\n"
    )
    squawk = [
        _squawk("require-concurrent-index-creation", migration, line=1, index=0),
        _squawk("require-concurrent-index-creation", migration, line=2, index=1),
        _squawk("prefer-robust-stmts", migration, line=1, index=0),
    ]
    report = check(
        [(migration, rendered)],
        squawk=squawk,
        sizes=SIZES,
        policy=LintPolicy(),
        lock_timeout_ms=500,
        statement_timeout_ms=0,
    )
    assert [(f.source, f.rule, f.line) for f in report.findings] == [
        ("hmig", "blocking-lock-on-large-table", 1),
        ("squawk", "prefer-robust-stmts", 1),
        ("squawk", "require-concurrent-index-creation", 2),  # doctors: no size, kept
    ]


def test_js_findings_point_to_the_statement() -> None:
    migration, rendered = js_migration(
        "002_js", "CREATE TABLE t (id int)", "CREATE INDEX ON patients (name)"
    )
    report = check(
        [(migration, rendered)],
        squawk=[_squawk("prefer-robust-stmts", migration, line=None, index=0)],
        sizes=SIZES,
        policy=LintPolicy(),
        lock_timeout_ms=500,
        statement_timeout_ms=0,
    )
    assert [(f.rule, f.file, f.line, f.statement_index) for f in report.findings] == [
        ("prefer-robust-stmts", "migrations/002_js.js", None, 0),
        ("blocking-lock-on-large-table", "migrations/002_js.js", None, 1),
    ]


def test_findings_follow_the_order_migrations_run_in() -> None:
    report = lint(
        "ALTER TABLE patients ALTER COLUMN age TYPE bigint;",
        "CREATE INDEX ON patients (name);\nVACUUM FULL visits;",
    )
    assert [(f.migration, f.rule) for f in report.findings] == [
        ("001_m", "table-rewrite"),
        ("002_m", "blocking-lock-on-large-table"),
        ("002_m", "table-rewrite"),
    ]


@pytest.mark.parametrize(
    ("fail_on", "text", "failed"),
    [
        ("never", "CREATE INDEX ON patients (name);", False),
        ("error", "CREATE INDEX ON patients (name);", True),
        ("warning", "CREATE INDEX ON patients (name);", True),
        ("error", "ALTER TABLE patients ALTER COLUMN name TYPE text;", False),  # a warning
        ("warning", "ALTER TABLE patients ALTER COLUMN name TYPE text;", True),
        ("warning", "CREATE INDEX CONCURRENTLY ON patients (name);", False),
        ("warning", "-- hmig:ignore table-rewrite\nSELECT 1;", True),  # an unused ignore
        ("error", "-- hmig:ignore table-rewrite\nSELECT 1;", False),
    ],
)
def test_fail_on(fail_on: str, text: str, failed: bool) -> None:
    assert lint(text, policy=LintPolicy(fail_on=fail_on)).failed is failed


def test_tables_to_size_names_existing_tables_only() -> None:
    migration, rendered, _ = sql_migration(
        "001_m",
        """
        CREATE TABLE visits (id int, pid int REFERENCES patients (id));
        CREATE INDEX ON clinic.doctors (name);
        SELECT * FROM visits;
        """,
    )
    assert tables_to_size([(migration, rendered)]) == ("patients", "clinic.doctors", "visits")


def test_orphan_directive_says_why_it_ignores_nothing() -> None:
    (orphan,) = lint("SELECT 1;\n\n-- hmig:ignore table-rewrite\n").unused_ignores
    assert orphan.statement_index is None and orphan.line == 3
    assert "ignores nothing" in orphan.message and orphan.help is not None


def test_directives_without_the_file_text_come_from_the_statement() -> None:
    statement = Statement(index=3, sql="CREATE INDEX ON t (a) -- hmig:ignore a-rule, B-Rule\n")
    assert ignores([statement], None) == (Ignore(3, "a-rule", None), Ignore(3, "b-rule", None))


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (RelationSize("t", rows=2_100_000, bytes=1_503_238_554), "≈ 2.1 M rows, 1.4 GB"),
        (RelationSize("t", rows=50_000, bytes=3_784_704), "≈ 50 k rows, 3.6 MB"),
        (RelationSize("t", rows=999, bytes=8192), "≈ 999 rows, 8 kB"),
        (RelationSize("t", rows=3_400_000_000, bytes=2 * 1024**4), "≈ 3.4 billion rows, 2.0 TB"),
        (RelationSize("t", rows=None, bytes=500), "500 bytes"),
    ],
)
def test_sizes_read_like_pg_size_pretty(size: RelationSize, text: str) -> None:
    assert describe_size(size) == text


def test_bytes() -> None:
    assert describe_bytes(10 * 1024 * 1024) == "10.0 MB"


def _squawk(rule: str, migration: MigrationFile, *, line: int | None, index: int) -> Finding:
    return Finding(
        rule=rule,
        severity="warning",
        message=f"squawk says {rule}",
        migration=migration.name,
        file=migration.path,
        line=line,
        column=1 if line else None,
        statement_index=index,
        source="squawk",
    )
