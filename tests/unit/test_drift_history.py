"""History drift, unverified rows, renames and repairs: files and history in, findings out."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hmig import discovery, manifest, planning, reporting
from hmig.errors import ExitCode, ManifestError
from hmig.model import (
    Applied,
    Drift,
    DriftFinding,
    DriftPolicy,
    History,
    Kind,
    MigrationFile,
    Outcome,
    Recorded,
    Repair,
)

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 2, 3, 4, 5)
RECORDED = datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)


def migration(name: str, text: str | None = None) -> MigrationFile:
    return MigrationFile(
        name=name,
        path=f"migrations/{name}.sql",
        abspath=Path("x"),
        kind=Kind.SQL,
        checksum=discovery.checksum(text if text is not None else f"-- {name}\n"),
    )


def files(*names: str) -> tuple[MigrationFile, ...]:
    return tuple(migration(n) for n in names)


def record(name: str, checksum: str | None, *, adopted: bool = False) -> Recorded:
    return Recorded(
        name=name,
        checksum=checksum,
        adopted=adopted,
        applied_by="ci",
        hmig_version="0.1.0",
        recorded_at=RECORDED,
    )


def history(*names: str, recorded: dict[str, Recorded] | None = None) -> History:
    """Rows in this order; by default every row is recorded by hmig with its file's checksum."""
    rows = tuple(
        Applied(id=i + 1, name=n, run_on=T0 + timedelta(minutes=i)) for i, n in enumerate(names)
    )
    if recorded is None:
        recorded = {n: record(n, migration(n.removesuffix(".up")).checksum) for n in names}
    return History(applied=rows, recorded=recorded)


def codes(findings: tuple[DriftFinding, ...]) -> list[str]:
    return [f.code for f in findings]


# --- checksums --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "CREATE TABLE a (id int);\r\n-- note\r\n",  # CRLF checkout
        "CREATE TABLE a (id int);\n-- note",  # no final newline
        "CREATE TABLE a (id int);\n-- note\n\n\n",  # extra blank lines at the end
        "CREATE TABLE a (id int);\r-- note\r",  # old Mac line endings
    ],
)
def test_checksum__line_endings_and_trailing_newlines__do_not_count(variant: str) -> None:
    assert discovery.checksum(variant) == discovery.checksum("CREATE TABLE a (id int);\n-- note\n")


@pytest.mark.parametrize(
    "edited",
    [
        "CREATE TABLE a (id bigint);\n-- note\n",  # the SQL
        "CREATE TABLE a (id int);\n-- note fixed\n",  # a comment
        "CREATE TABLE a  (id int);\n-- note\n",  # spacing inside a line
        "\nCREATE TABLE a (id int);\n-- note\n",  # a leading blank line
    ],
)
def test_checksum__any_other_edit__counts(edited: str) -> None:
    assert discovery.checksum(edited) != discovery.checksum("CREATE TABLE a (id int);\n-- note\n")


# --- history drift, one kind at a time --------------------------------------------------------


def test_history_drift__files_and_records_agree__finds_nothing() -> None:
    assert planning.history_drift(files("001_a", "002_b"), history("001_a", "002_b")) == ()


def test_history_drift__pending_out_of_order_file__is_not_drift() -> None:
    given = files("001_a", "002_b", "003_c")

    found = planning.history_drift(given, history("001_a", "003_c"))

    assert found == ()
    assert planning.plan(given, history("001_a", "003_c")).out_of_order == ("002_b",)


def test_history_drift__applied_file_edited__names_file_when_checksums_and_fix() -> None:
    edited = migration("001_a", "CREATE TABLE a (id bigint);")
    was = migration("001_a").checksum

    (finding,) = planning.history_drift((edited,), history("001_a"))

    assert finding == DriftFinding(
        check="history",
        code="file-changed",
        object="migration 001_a",
        message=f"migrations/001_a.sql changed since hmig recorded it on 2024-01-02 03:04:06 "
        f"(checksum {was.removeprefix('sha256:')[:12]}… → "
        f"{edited.checksum.removeprefix('sha256:')[:12]}…)",
        hint="An applied migration never runs again: revert the edit and put the change in a "
        "new migration, or run `hmig repair --yes` to accept the file as it is now.",
        since=RECORDED,
    )


def test_history_drift__adopted_file_edited_since_adoption__says_adopted() -> None:
    recorded = {"001_a": record("001_a", migration("001_a").checksum, adopted=True)}

    (finding,) = planning.history_drift(
        (migration("001_a", "SELECT 2;"),), history("001_a", recorded=recorded)
    )

    assert finding.code == "file-changed"
    assert "since hmig adopted it on 2024-01-02" in finding.message


def test_history_drift__recorded_file_deleted__is_file_missing_since_its_run() -> None:
    (finding,) = planning.history_drift(files("001_a"), history("001_a", "002_gone"))

    assert finding.code == "file-missing"
    assert finding.object == "migration 002_gone"
    assert finding.message == (
        "002_gone was applied on 2024-01-02 03:05:05, but its file is gone from the migrations "
        "folder"
    )
    assert finding.since == T0 + timedelta(minutes=1)
    assert finding.hint is not None and "hmig repair --yes" in finding.hint


def test_history_drift__row_no_file_and_no_record_explains__is_unknown_row() -> None:
    rows = history(
        "001_a", "000_foreign", recorded={"001_a": record("001_a", files("001_a")[0].checksum)}
    )

    (finding,) = planning.history_drift(files("001_a"), rows)

    assert finding.code == "unknown-row"
    assert finding.object == "migration 000_foreign"
    assert "explained by no migration file" in finding.message
    assert finding.hint is not None and "migrations.renamed" in finding.hint


def test_history_drift__file_renamed_after_it_ran__is_recognised_by_its_content() -> None:
    old = migration("001_old", "CREATE TABLE a (id int);")
    new = migration("001_new", "CREATE TABLE a (id int);\r\n")  # renamed, and checked out CRLF
    rows = history("001_old", recorded={"001_old": record("001_old", old.checksum)})

    (finding,) = planning.history_drift((new,), rows)

    assert finding.code == "file-renamed"
    assert "migrations/001_new.sql has the content it was applied with" in finding.message
    assert finding.hint is not None
    assert "migrations.renamed: {001_old: 001_new}" in finding.hint


def test_history_drift__rename_recorded_in_the_manifest__is_no_drift() -> None:
    given = files("001_a", "002_new")
    # hmig recorded the row under its old name, with the content the new file still has.
    rows = history(
        "001_a",
        "002_old",
        recorded={
            "001_a": record("001_a", given[0].checksum),
            "002_old": record("002_old", given[1].checksum),
        },
    )

    assert planning.history_drift(given, rows, renamed={"002_old": "002_new"}) == ()
    plan_ = planning.plan(given, rows, renamed={"002_old": "002_new"})
    assert (plan_.pending, plan_.unknown) == ((), ())


def test_history_drift__renamed_file_edited_too__is_file_changed_under_the_row_name() -> None:
    given = (migration("002_new", "SELECT 2;"),)
    rows = history("002_old", recorded={"002_old": record("002_old", "sha256:before")})

    (finding,) = planning.history_drift(given, rows, renamed={"002_old": "002_new"})

    assert (finding.code, finding.object) == ("file-changed", "migration 002_old")
    assert finding.message.startswith("migrations/002_new.sql changed")


def test_history_drift__same_name_twice__is_one_duplicate_finding() -> None:
    found = planning.history_drift(files("001_a", "002_b"), history("001_a", "002_b", "001_a"))

    (finding,) = found
    assert finding.code == "duplicate-row"
    assert finding.message == (
        "001_a is recorded 2 times in the history table (id 1 on 2024-01-02 03:04:05, "
        "id 3 on 2024-01-02 03:06:05)"
    )
    assert finding.since == T0 + timedelta(minutes=2)


def test_history_drift__old_and_new_name_both_recorded__is_a_duplicate() -> None:
    given = files("002_new")
    rows = history(
        "002_old",
        "002_new",
        recorded={
            "002_old": record("002_old", given[0].checksum),
            "002_new": record("002_new", given[0].checksum),
        },
    )

    assert codes(planning.history_drift(given, rows, renamed={"002_old": "002_new"})) == [
        "duplicate-row"
    ]


def test_history_drift__legacy_up_row__compares_the_up_file() -> None:
    rows = history("001_a.up", recorded={"001_a.up": record("001_a.up", "sha256:other")})

    assert codes(planning.history_drift(files("001_a"), rows)) == ["file-changed"]


def test_history_drift__rows_another_tool_wrote__are_not_drift() -> None:
    rows = history("001_a", "002_b", recorded={})

    assert planning.history_drift(files("001_a", "002_b"), rows) == ()


def test_history_drift__several_kinds__in_history_order_then_duplicates() -> None:
    given = (migration("001_a", "edited"), migration("003_c"))
    rows = history("001_a", "002_gone", "003_c", "003_c")

    assert codes(planning.history_drift(given, rows)) == [
        "file-changed",
        "file-missing",
        "duplicate-row",
    ]


# --- unverified -------------------------------------------------------------------------------


def test_unverified__adopted_and_unrecorded_rows__one_warning_naming_them() -> None:
    given = files("001_a", "002_b", "003_c")
    rows = history(
        "001_a",
        "002_b",
        "003_c",
        recorded={
            "001_a": record("001_a", given[0].checksum, adopted=True),
            "003_c": record("003_c", given[2].checksum),
        },
    )

    (notice,) = planning.unverified(given, rows)

    assert notice.code == "unverified"
    assert notice.message.startswith(
        "2 applied migration(s) were applied by another tool and their content is unverified: "
        "001_a, 002_b."
    )
    assert notice.code in reporting.WARNING_CODES


def test_unverified__many__names_five_and_counts_the_rest() -> None:
    names = [f"00{i}_m" for i in range(8)]

    (notice,) = planning.unverified(files(*names), history(*names, recorded={}))

    assert "000_m, 001_m, 002_m, 003_m, 004_m and 3 more." in notice.message


def test_unverified__skip__leaves_out_rows_another_warning_names() -> None:
    assert planning.unverified(files("001_a"), history("001_a", recorded={}), skip={"001_a"}) == ()


def test_unverified__everything_recorded_by_hmig__no_warning() -> None:
    assert planning.unverified(files("001_a"), history("001_a")) == ()


def test_verifiable__adopted_rows_whose_file_still_matches() -> None:
    given = (migration("001_a"), migration("002_b", "edited"))
    rows = history(
        "001_a",
        "002_b",
        recorded={
            "001_a": record("001_a", migration("001_a").checksum, adopted=True),
            "002_b": record("002_b", migration("002_b").checksum, adopted=True),
        },
    )

    assert planning.verifiable(given, rows) == ("001_a",)


# --- repairs ----------------------------------------------------------------------------------


def test_repairs__nothing_wrong__nothing_to_do() -> None:
    assert planning.repairs(files("001_a"), history("001_a")) == ()


def test_repairs__one_of_each_kind__accept_remap_remove() -> None:
    renamed_file = migration("004_new", "CREATE TABLE d (id int);")
    given = (migration("001_a", "edited"), migration("002_b"), renamed_file)
    rows = history(
        "001_a",
        "002_b",
        "003_gone",
        "004_old",
        "002_b",
        recorded={
            "001_a": record("001_a", migration("001_a").checksum),
            "002_b": record("002_b", migration("002_b").checksum, adopted=True),
            "003_gone": record("003_gone", "sha256:gone"),
            "004_old": record("004_old", renamed_file.checksum),
        },
    )

    changes = planning.repairs(given, rows)

    assert [(c.action, c.name, c.row_id, c.new_name) for c in changes] == [
        ("accept", "001_a", None, None),
        ("accept", "002_b", None, None),
        ("remove", "002_b", 5, None),
        ("remove", "003_gone", 3, None),
        ("remap", "004_old", 4, "004_new"),
    ]
    assert changes[0].checksum == given[0].checksum
    assert changes[0].detail.startswith("file changed since it was recorded")
    assert changes[1].detail == "adopted from another tool; checksum now accepted"
    assert changes[2].detail.startswith("recorded again (id 5")


def test_repairs__row_without_record__is_accepted_with_the_file_checksum() -> None:
    changes = planning.repairs(files("001_a"), history("001_a", recorded={}))

    assert changes == (
        Repair(
            action="accept",
            name="001_a",
            detail="applied by another tool; its checksum now is recorded and accepted",
            checksum=migration("001_a").checksum,
        ),
    )


def test_repairs__rename_recorded_in_manifest__leaves_the_row_alone() -> None:
    given = files("002_new")
    rows = history("002_old", recorded={"002_old": record("002_old", given[0].checksum)})

    assert planning.repairs(given, rows, renamed={"002_old": "002_new"}) == ()


# --- migrations.renamed -----------------------------------------------------------------------


def test_check_renamed__valid_map__passes() -> None:
    planning.check_renamed(files("002_new"), {"002_old": "002_new"}, manifest_file="hmig.yml")


@pytest.mark.parametrize(
    ("renamed", "message"),
    [
        ({"002_old": "002_typo"}, "no migration file is named '002_typo'"),
        ({"002_new": "001_a"}, "a migration file is still named '002_new'"),
    ],
)
def test_check_renamed__new_name_missing_or_old_name_still_a_file__is_exit_2(
    renamed: dict[str, str], message: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        planning.check_renamed(files("001_a", "002_new"), renamed, manifest_file="hmig.yml")

    assert message in caught.value.message
    assert caught.value.key is not None and caught.value.key.startswith("migrations.renamed.")
    assert caught.value.exit_code is ExitCode.CANNOT


def test_rollback_range__renamed_row__rolls_back_the_new_file() -> None:
    given = files("001_a", "002_new")
    rows = history("001_a", "002_old")

    targets = planning.rollback_range(given, rows, count=1, to=None, renamed={"002_old": "002_new"})

    assert [m.name for m in targets] == ["002_new"]


# --- the manifest -----------------------------------------------------------------------------


def parse(text: str) -> Any:
    return manifest.parse(textwrap.dedent(text).lstrip("\n"), path=Path("/p/hmig.yml"))


def test_manifest__drift_defaults__history_failing_and_both_when_protected() -> None:
    parsed = parse(
        """
        version: 1
        migrations:
          dir: m
        environments:
          dev: {}
          prod:
            protected: true
        """
    )

    assert parsed.environments["dev"].drift == DriftPolicy(check="history", fail=True)
    assert parsed.environments["prod"].drift == DriftPolicy(check="both", fail=True)
    assert parsed.environments["prod"].drift.checks == ("history", "schema")
    assert parsed.migrations.renamed == {}


def test_manifest__drift_and_renamed_given__are_kept() -> None:
    parsed = parse(
        """
        version: 1
        migrations:
          dir: m
          renamed:
            1700000000000_add-phone: 1700000000000_add-patient-phone
        environments:
          prod:
            protected: true
            drift:
              check: none
              fail: false
              ignore: ["table public.spatial_ref_sys"]
              privileges: true
              shadow_url_env: SHADOW_URL
              schemas: [public, audit]
        """
    )

    assert parsed.migrations.renamed == {
        "1700000000000_add-phone": "1700000000000_add-patient-phone"
    }
    assert parsed.environments["prod"].drift == DriftPolicy(
        check="none",
        fail=False,
        ignore=("table public.spatial_ref_sys",),
        privileges=True,
        shadow_url_env="SHADOW_URL",
        schemas=("public", "audit"),
    )
    assert parsed.environments["prod"].drift.checks == ()


@pytest.mark.parametrize(
    ("lines", "line", "key"),
    [
        ("drift:\n      check: always", 8, "environments.dev.drift.check"),
        ("drift:\n      fail: yes-please", 8, "environments.dev.drift.fail"),
        ("drift:\n      chek: both", 8, "environments.dev.drift.chek"),
    ],
)
def test_manifest__bad_drift_value__names_line_and_key(lines: str, line: int, key: str) -> None:
    text = (
        "version: 1\nmigrations:\n  dir: m\nenvironments:\n  dev:\n    protected: false\n    "
        + lines
        + "\n"
    )

    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=Path("/p/hmig.yml"))

    assert caught.value.key == key
    assert caught.value.line == line


def test_manifest__rename_to_itself__is_refused_at_its_line() -> None:
    text = "version: 1\nmigrations:\n  dir: m\n  renamed:\n    a: a\nenvironments:\n  dev: {}\n"

    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=Path("/p/hmig.yml"))

    assert caught.value.line == 5
    assert caught.value.key == "migrations.renamed.a"
    assert "renamed to itself" in caught.value.message


# --- the report -------------------------------------------------------------------------------


def validate(report: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(reporting.report_schema())
    assert [e.message for e in validator.iter_errors(report)] == []
    assert json.loads(json.dumps(report)) == report


def build(drift: Drift | None, outcome: Outcome = Outcome.DRIFT) -> dict[str, Any]:
    return reporting.build_report(
        command="drift",
        environment="prod",
        target=None,
        outcome=outcome,
        exit_code=ExitCode.NO if outcome is Outcome.DRIFT else ExitCode.OK,
        hmig_version="0.1.0",
        drift=drift,
    )


def test_report__no_check_ran__drift_is_null() -> None:
    report = build(None, Outcome.OK)

    validate(report)
    assert report["drift"] is None


def test_report__findings__the_agreed_shape() -> None:
    found = planning.history_drift((migration("001_a", "edited"),), history("001_a"))
    schema_finding = DriftFinding(
        check="schema",
        code="column-unexpected",
        object="column public.patients.phone",
        message="column public.patients.phone exists in the database but no migration creates it",
    )

    report = build(
        Drift(checked=("history", "schema"), fail=True, findings=(*found, schema_finding))
    )

    validate(report)
    assert report["drift"]["checked"] == ["history", "schema"]
    assert report["drift"]["fail"] is True
    history_entry, schema_entry = report["drift"]["findings"]
    assert set(history_entry) == {"check", "code", "object", "message", "hint", "since"}
    assert history_entry["since"] == "2024-01-02T03:04:06+00:00"
    assert schema_entry == {
        "check": "schema",
        "code": "column-unexpected",
        "object": "column public.patients.phone",
        "message": "column public.patients.phone exists in the database but no migration "
        "creates it",
        "hint": None,
        "since": None,
    }


def test_drift_lines__failing__each_finding_with_its_fix() -> None:
    found = planning.history_drift(files("001_a"), history("001_a", "002_gone"))

    lines = reporting.drift_lines(Drift(checked=("history",), fail=True, findings=found))

    assert lines[0] == "✗ Drift (history checked): 1 finding(s):"
    assert lines[1].startswith("   ✗ file-missing: 002_gone was applied on 2024-01-02")
    assert lines[2].startswith("     fix: Restore the file")


def test_drift_lines__not_failing__warns_and_says_the_run_goes_on() -> None:
    found = planning.history_drift(files("001_a"), history("001_a", "002_gone"))

    drift = Drift(checked=("history",), fail=False, findings=found)

    assert reporting.drift_lines(drift, note="drift.fail: false, so the run goes on")[0] == (
        "⚠ Drift (history checked): 1 finding(s) (drift.fail: false, so the run goes on):"
    )
    assert reporting.drift_lines(drift)[0] == "⚠ Drift (history checked): 1 finding(s):"


def test_drift_lines__clean__one_line() -> None:
    assert reporting.drift_lines(Drift(checked=("history", "schema"), fail=True)) == [
        "✓ No drift (history and schema checked)."
    ]


def test_report_schema__command_enum_has_drift_and_drift_is_required() -> None:
    schema = reporting.report_schema()

    assert "drift" in schema["properties"]["command"]["enum"]
    assert "drift" in schema["required"]


# --- the README -------------------------------------------------------------------------------


def _readme_table(heading: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|", section.split("\n\n", 2)[1], re.MULTILINE)
    return rows


def test_readme__warning_codes_table__lists_exactly_the_warning_codes() -> None:
    assert sorted(_readme_table("Warning codes:")) == sorted(reporting.WARNING_CODES)


def test_readme__history_drift_codes__every_code_planning_emits_is_documented() -> None:
    documented = set(_readme_table("History drift codes:"))
    given = (migration("001_a", "edited"), migration("004_new", "renamed"))
    rows = history(
        "001_a",
        "002_gone",
        "003_foreign",
        "004_old",
        "001_a",
        recorded={
            "001_a": record("001_a", "sha256:old"),
            "002_gone": record("002_gone", "sha256:gone"),
            "004_old": record("004_old", given[1].checksum),
        },
    )

    emitted = set(codes(planning.history_drift(given, rows)))

    assert emitted == {
        "file-changed",
        "file-missing",
        "unknown-row",
        "file-renamed",
        "duplicate-row",
    }
    assert emitted == documented
