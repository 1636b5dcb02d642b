"""Plans and runs → the `--json` report (checked against its schema) and human lines."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hmig import planning, reporting
from hmig.errors import ExitCode, ManifestError, StrictOrderViolation
from hmig.model import (
    Applied,
    Failure,
    History,
    Kind,
    MigrationFile,
    Notice,
    Outcome,
    Ran,
    Rendered,
    RunReport,
    Statement,
    Target,
)

RUN_ON = datetime(2024, 5, 6, 7, 8, 9)
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
TARGET = Target(host="db.internal", port=5432, database="app", user="deploy", server_version="18.1")


def migration(name: str, kind: Kind = Kind.SQL) -> MigrationFile:
    suffix = "sql" if kind is Kind.SQL else "js"
    return MigrationFile(
        name=name,
        path=f"migrations/{name}.{suffix}",
        abspath=Path("x"),
        kind=kind,
        checksum="sha256:0",
    )


def validate(report: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        reporting.report_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(report)]
    assert errors == []
    # The report is printed as JSON: it must survive the round trip unchanged.
    assert json.loads(json.dumps(report)) == report


FAILURE = Failure(
    migration="002_b",
    file="migrations/002_b.sql",
    message='column "nme" does not exist',
    sqlstate="42703",
    detail="There is a column named name.",
    hint='Perhaps you meant to reference the column "users.name".',
    line=12,
    column=8,
    statement="SELECT nme\nFROM users",
    statements_done=None,
    statements_total=None,
    rolled_back=True,
    advice="This migration was rolled back. Fix it and run hmig apply again.",
)


# --- build_report against the schema ----------------------------------------------------------


def test_report_schema__is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(reporting.report_schema())


def test_build_report__plan_with_pending_sql__validates_and_carries_the_sql() -> None:
    statements = (
        Statement(index=0, sql="CREATE TABLE a (id int)", line=2, column=1),
        Statement(index=1, sql="CREATE INDEX CONCURRENTLY i ON a (id)", line=3, column=1),
    )
    rendered = Rendered(statements, transactional=False, reason="CREATE INDEX CONCURRENTLY")
    report = reporting.build_report(
        command="plan",
        environment="staging",
        target=TARGET,
        outcome=Outcome.OK,
        exit_code=ExitCode.OK,
        hmig_version="0.1.0",
        applied=[Applied(id=1, name="001_a", run_on=RUN_ON)],
        pending=[(migration("002_b"), rendered), (migration("003_c", Kind.JS), None)],
        notices=[
            Notice(code="out-of-order", message="m", migration="002_b", file="migrations/002_b.sql")
        ],
    )

    validate(report)
    assert report["database"] == {
        "host": "db.internal",
        "port": 5432,
        "name": "app",
        "server_version": "18.1",
    }
    assert report["applied"] == [{"name": "001_a", "run_on": "2024-05-06T07:08:09"}]
    assert report["pending"] == [
        {
            "name": "002_b",
            "path": "migrations/002_b.sql",
            "kind": "sql",
            "transactional": False,
            "statements": 2,
            "sql": "CREATE TABLE a (id int);\n\nCREATE INDEX CONCURRENTLY i ON a (id);",
        },
        {
            "name": "003_c",
            "path": "migrations/003_c.js",
            "kind": "js",
            "transactional": None,
            "statements": None,
            "sql": None,
        },
    ]
    assert report["warnings"] == [
        {
            "code": "out-of-order",
            "message": "m",
            "migration": "002_b",
            "file": "migrations/002_b.sql",
            "line": None,
        }
    ]
    assert (report["outcome"], report["exit_code"]) == ("ok", 0)
    assert report["ran"] == [] and report["failure"] is None and report["error"] is None


def test_build_report__apply_with_ran_and_failure__validates() -> None:
    run = RunReport(
        ran=(
            Ran(name="001_a", kind=Kind.SQL, transactional=True, duration_ms=12.5, statements=2),
            Ran(name="001_j", kind=Kind.JS, transactional=False, duration_ms=1, statements=1),
        ),
        failure=FAILURE,
    )
    report = reporting.build_report(
        command="apply",
        environment="production",
        target=Target(host="/run/pg", port=None, database="app", user=None),
        outcome=run.outcome,
        exit_code=ExitCode.NO,
        hmig_version="0.1.0",
        pending=[(migration("002_b"), None)],
        run=run,
    )

    validate(report)
    assert report["outcome"] == "failed"
    assert report["exit_code"] == 1
    assert report["database"]["port"] is None
    assert [r["name"] for r in report["ran"]] == ["001_a", "001_j"]
    assert report["ran"][0] == {
        "name": "001_a",
        "kind": "sql",
        "transactional": True,
        "duration_ms": 12.5,
        "statements": 2,
        "retries": 0,
    }
    assert report["failure"] == {
        "migration": "002_b",
        "file": "migrations/002_b.sql",
        "line": 12,
        "column": 8,
        "message": 'column "nme" does not exist',
        "sqlstate": "42703",
        "detail": "There is a column named name.",
        "hint": 'Perhaps you meant to reference the column "users.name".',
        "statement": "SELECT nme\nFROM users",
        "statements_done": None,
        "statements_total": None,
        "advice": "This migration was rolled back. Fix it and run hmig apply again.",
        "at_commit": False,
    }


def test_build_report__error_before_connecting__validates_with_the_error() -> None:
    error = ManifestError(
        "unknown key 'tabel'", file="hmig.yml", line=4, key="migrations.tabel", hint="See schema."
    )
    report = reporting.build_report(
        command="validate",
        environment=None,
        target=None,
        outcome=Outcome.ERROR,
        exit_code=error.exit_code,
        hmig_version="0.1.0",
        error=error,
    )

    validate(report)
    assert report["database"] is None
    assert report["environment"] is None
    assert (report["outcome"], report["exit_code"]) == ("error", 2)
    assert report["error"] == {
        "type": "ManifestError",
        "message": "hmig.yml:4: migrations.tabel: unknown key 'tabel'",
        "hint": "See schema.",
    }


def test_build_report__error_without_hint__reports_hint_as_null() -> None:
    error = StrictOrderViolation("1 pending migration(s) sort before an applied one: 002_b")
    report = reporting.build_report(
        command="apply",
        environment="prod",
        target=TARGET,
        outcome=Outcome.FAILED,
        exit_code=error.exit_code,
        hmig_version="0.1.0",
        error=error,
        unknown=[Applied(id=9, name="gone", run_on=RUN_ON)],
    )

    validate(report)
    assert report["error"]["hint"] is None
    assert report["exit_code"] == 1
    assert report["unknown"] == [{"name": "gone", "run_on": "2024-05-06T07:08:09"}]


def test_build_report__run_on_from_a_naive_timestamp__honours_the_schema_format() -> None:
    # pgmigrations.run_on is `timestamp` (no time zone), so the adapter yields naive datetimes.
    report = reporting.build_report(
        command="status",
        environment="dev",
        target=None,
        outcome=Outcome.OK,
        exit_code=ExitCode.OK,
        hmig_version="0.1.0",
        applied=[Applied(id=1, name="001_a", run_on=RUN_ON)],
    )
    row_schema = reporting.report_schema()["$defs"]["row"]["properties"]["run_on"]

    if row_schema.get("format") == "date-time":
        # JSON Schema's date-time is RFC 3339's, which requires a time zone offset.
        assert re.fullmatch(RFC3339, report["applied"][0]["run_on"]), report["applied"][0]


@pytest.mark.parametrize("outcome", list(Outcome))
def test_build_report__every_outcome__is_allowed_by_the_schema(outcome: Outcome) -> None:
    report = reporting.build_report(
        command="status",
        environment="dev",
        target=None,
        outcome=outcome,
        exit_code=ExitCode.OK,
        hmig_version="0.1.0",
    )

    validate(report)
    assert report["outcome"] == outcome.value


@pytest.mark.parametrize("exit_code", list(ExitCode))
def test_build_report__every_exit_code__is_allowed_by_the_schema(exit_code: ExitCode) -> None:
    report = reporting.build_report(
        command="status",
        environment="dev",
        target=None,
        outcome=Outcome.OK,
        exit_code=exit_code,
        hmig_version="0.1.0",
    )

    validate(report)
    assert report["exit_code"] == int(exit_code)


def test_report_schema__required_keys__are_exactly_what_build_report_writes() -> None:
    report = reporting.build_report(
        command="status",
        environment=None,
        target=None,
        outcome=Outcome.OK,
        exit_code=ExitCode.OK,
        hmig_version="0.1.0",
    )
    schema = reporting.report_schema()

    assert set(report) == set(schema["required"]) == set(schema["properties"])


def test_report__target_user__never_appears() -> None:
    report = reporting.build_report(
        command="status",
        environment="prod",
        target=Target(host="h", port=5432, database="d", user="secret_admin_user"),
        outcome=Outcome.OK,
        exit_code=ExitCode.OK,
        hmig_version="0.1.0",
    )

    validate(report)
    assert "secret_admin_user" not in json.dumps(report)


# --- warning codes ----------------------------------------------------------------------------


def test_warning_codes__equal_the_schema_enum_in_order() -> None:
    schema = reporting.report_schema()
    enum = schema["properties"]["warnings"]["items"]["properties"]["code"]["enum"]

    assert list(reporting.WARNING_CODES) == enum


def test_warning_codes__every_notice_planning_emits__is_documented() -> None:
    files = (migration("001_a"), migration("002_b"), migration("003_c"))
    history = History(
        applied=tuple(
            Applied(id=i, name=name, run_on=RUN_ON)
            for i, name in enumerate(["001_a.up", "003_c", "003_c", "gone"])
        )
    )

    notices = (*planning.plan(files, history).notices, *planning.unverified(files, history))

    assert {n.code for n in notices} == {"out-of-order", "legacy-up-name", "unverified"}
    assert {n.code for n in notices} <= set(reporting.WARNING_CODES)


# --- redact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (
            "postgresql://deploy:s3cr3t@db/app failed; password=s3cr3t",
            ["s3cr3t"],
            "postgresql://deploy:***@db/app failed; password=***",
        ),
        ("a=p4ss b=hunter2 c=p4ss", ["hunter2", "p4ss"], "a=*** b=*** c=***"),
        ("nothing secret here", ["s3cr3t"], "nothing secret here"),
        ("no secrets given", [], "no secrets given"),
        ("line1 s3cr3t\nline2 s3cr3t", ["s3cr3t"], "line1 ***\nline2 ***"),
    ],
)
def test_redact__secret_occurrences__are_all_masked(
    text: str, secrets: list[str], expected: str
) -> None:
    redacted = reporting.redact(text, secrets)

    assert redacted == expected
    assert all(secret not in redacted for secret in secrets)


def test_redact__whole_json_report__masks_a_password_in_any_field() -> None:
    error = ManifestError(
        "cannot connect to postgresql://u:Pa55w0rd!@h/d", file="hmig.yml", hint="Pa55w0rd! wrong"
    )
    report = reporting.build_report(
        command="apply",
        environment="prod",
        target=None,
        outcome=Outcome.ERROR,
        exit_code=ExitCode.CANNOT,
        hmig_version="0.1.0",
        error=error,
    )

    printed = reporting.redact(json.dumps(report), ["Pa55w0rd!"])

    assert "Pa55w0rd!" not in printed
    assert json.loads(printed)["error"]["hint"] == "*** wrong"


# --- human lines ------------------------------------------------------------------------------


def test_failure_lines__full_failure__has_location_sqlstate_detail_hint_statement_advice() -> None:
    assert reporting.failure_lines(FAILURE) == [
        '✗ 002_b failed: column "nme" does not exist',
        "    at migrations/002_b.sql:12:8",
        "    SQLSTATE 42703",
        "    detail: There is a column named name.",
        '    hint: Perhaps you meant to reference the column "users.name".',
        "    statement:",
        "      SELECT nme",
        "      FROM users",
        "This migration was rolled back. Fix it and run hmig apply again.",
    ]


def test_failure_lines__only_file__has_no_optional_lines() -> None:
    failure = Failure(migration="001_j", file="migrations/001_j.js", message="boom")

    assert reporting.failure_lines(failure) == [
        "✗ 001_j failed: boom",
        "    at migrations/001_j.js",
    ]


def test_failure_lines__line_without_column__shows_file_and_line() -> None:
    failure = Failure(migration="a", file="m/a.sql", message="x", line=3)

    assert reporting.failure_lines(failure)[1] == "    at m/a.sql:3"


def test_failure_lines__at_commit__names_the_commit_not_a_place_in_the_file() -> None:
    # A deferred check failed at COMMIT: the migration named is only the transaction's last.
    failure = Failure(
        migration="003_c", file="migrations/003_c.sql", message="fk violated", at_commit=True
    )

    assert reporting.failure_lines(failure) == ["✗ COMMIT failed after 003_c: fk violated"]


def test_failure_lines__long_statement__shows_six_lines_and_an_ellipsis() -> None:
    statement = "\n".join(f"line {i}" for i in range(1, 10))
    failure = Failure(migration="a", file="m/a.sql", message="x", statement=statement)

    lines = reporting.failure_lines(failure)

    assert lines[2:] == [
        "    statement:",
        "      line 1",
        "      line 2",
        "      line 3",
        "      line 4",
        "      line 5",
        "      line 6",
        "      …",
    ]


def test_error_lines__multi_line_hint__is_indented_line_by_line() -> None:
    error = ManifestError("bad", file="hmig.yml", line=2, hint="first\nsecond")

    assert reporting.error_lines(error) == ["✗ hmig.yml:2: bad", "  first", "  second"]


def test_result_lines__applied_with_pending_left__counts_and_sums_durations() -> None:
    run = RunReport(
        ran=(
            Ran(name="a", kind=Kind.SQL, transactional=True, duration_ms=600, statements=1),
            Ran(name="b", kind=Kind.SQL, transactional=True, duration_ms=900, statements=1),
        )
    )

    assert reporting.result_lines(run, pending_left=2) == [
        "✓ Applied 2 migration(s) in 1.5 s. 2 still pending after --target."
    ]


def test_result_lines__failure__are_the_failure_lines() -> None:
    run = RunReport(ran=(), failure=FAILURE)

    assert reporting.result_lines(run, pending_left=0) == reporting.failure_lines(FAILURE)


def test_header__names_environment_and_target_without_password() -> None:
    assert reporting.header("apply", "prod", TARGET) == (
        "hmig apply · environment prod · deploy@db.internal:5432/app (PostgreSQL 18.1)"
    )
