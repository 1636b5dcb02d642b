"""`hmig.drift.compare`: expected vs actual snapshot → differences in words, grouped, ignorable.

Also the shadow's pure parts: which history rows it replays, and how a failed replay is told.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from hmig.commands.shadow import _replay_failed, applied_files
from hmig.drift import Difference, compare, ignored
from hmig.errors import ConfigurationError
from hmig.model import Applied, Failure, History, Kind, MigrationFile
from hmig.snapshot import SchemaObject, SchemaSnapshot


def obj(kind: str, name: str, parent: str | None = None, **attributes: str) -> SchemaObject:
    pairs = tuple((label.replace("_", " "), value) for label, value in attributes.items())
    return SchemaObject(kind=kind, name=name, attributes=pairs, parent=parent)


def snap(*objects: SchemaObject, major: int = 18) -> SchemaSnapshot:
    return SchemaSnapshot(
        server_major=major, schemas=("public",), objects={o.identity: o for o in objects}
    )


PATIENTS = obj("table", "public.patients", row_level_security="enabled")
NAME = obj("column", "public.patients.name", "table public.patients", type="text")


def codes(found: list[Difference]) -> list[tuple[str, str]]:
    return [(d.code, d.object) for d in found]


def test_compare__same_schema__nothing() -> None:
    assert compare(snap(PATIENTS, NAME), snap(PATIENTS, NAME)) == []


def test_compare__column_only_in_database__unexpected_in_words() -> None:
    phone = obj("column", "public.patients.phone", "table public.patients", type="text")
    [found] = compare(snap(PATIENTS), snap(PATIENTS, phone))
    assert found.code == "column-unexpected"
    assert found.object == "column public.patients.phone"
    assert found.message == (
        "column public.patients.phone exists in the database but no migration creates it"
    )
    assert found.group == "table public.patients"
    assert found.hint and "drift.ignore" in found.hint


def test_compare__index_only_in_migrations__missing() -> None:
    index = obj("index", "public.idx_x", "table public.patients", definition="CREATE INDEX …")
    [found] = compare(snap(PATIENTS, index), snap(PATIENTS))
    assert (found.code, found.object) == ("index-missing", "index public.idx_x")
    assert "is created by the migrations but does not exist in the database" in found.message


def test_compare__changed_attributes__both_sides_in_one_sentence() -> None:
    want = obj(
        "column",
        "public.patients.note",
        "table public.patients",
        type="varchar(100)",
        nullability="nullable",
        default="'none'::character varying",
    )
    have = obj(
        "column",
        "public.patients.note",
        "table public.patients",
        type="text",
        nullability="NOT NULL",
        default="'none'::character varying",
    )
    [found] = compare(snap(want), snap(have))
    assert found.code == "column-changed"
    assert found.message == (
        "column public.patients.note differs: type: database text / migrations varchar(100); "
        "nullability: database NOT NULL / migrations nullable"
    )


def test_compare__attribute_only_on_one_side__shown_as_none() -> None:
    want = obj("column", "public.t.a", "table public.t", type="text")
    have = obj("column", "public.t.a", "table public.t", type="text", default="0")
    [found] = compare(snap(want), snap(have))
    assert found.message == "column public.t.a differs: default: database 0 / migrations (none)"


def test_compare__definition__label_left_out() -> None:
    want = obj("index", "public.i", "table public.t", definition="CREATE INDEX i ON public.t (a)")
    have = obj("index", "public.i", "table public.t", definition="CREATE INDEX i ON public.t (b)")
    [found] = compare(snap(want), snap(have))
    assert found.message == (
        "index public.i differs: database CREATE INDEX i ON public.t (b) / "
        "migrations CREATE INDEX i ON public.t (a)"
    )


def test_compare__long_values__excerpt_around_the_first_difference() -> None:
    body = "BEGIN " + "x := x + 1; " * 30
    want = obj("function", "public.f()", body=body + "RETURN x; END")
    have = obj("function", "public.f()", body=body + "RETURN 0; END")
    [found] = compare(snap(want), snap(have))
    assert "…" in found.message
    assert "RETURN 0; END" in found.message and "RETURN x; END" in found.message
    assert len(found.message) < 250


def test_compare__table_only_in_database__its_parts_are_not_listed_again() -> None:
    audit = obj("table", "public.audit")
    parts = [
        obj("column", "public.audit.id", "table public.audit", type="integer"),
        obj("index", "public.audit_idx", "table public.audit", definition="…"),
        obj("sequence", "public.audit_id_seq", "table public.audit"),
    ]
    assert codes(compare(snap(), snap(audit, *parts))) == [
        ("table-unexpected", "table public.audit")
    ]
    assert codes(compare(snap(audit, *parts), snap())) == [("table-missing", "table public.audit")]


def test_compare__invalid_index_that_migrations_create__fix_commands() -> None:
    want = obj(
        "index", "public.idx_email", "table public.patients", definition="D", validity="valid"
    )
    have = obj(
        "index", "public.idx_email", "table public.patients", definition="D", validity="INVALID"
    )
    [found] = compare(snap(want), snap(have))
    assert found.code == "index-invalid"
    assert "INVALID" in found.message and "CREATE INDEX CONCURRENTLY" in found.message
    assert found.hint is not None
    assert "REINDEX INDEX CONCURRENTLY public.idx_email;" in found.hint
    assert "DROP INDEX CONCURRENTLY public.idx_email;" in found.hint


def test_compare__invalid_index_with_another_definition__both_reported() -> None:
    want = obj("index", "public.i", "table public.t", definition="A", validity="valid")
    have = obj("index", "public.i", "table public.t", definition="B", validity="INVALID")
    assert [d.code for d in compare(snap(want), snap(have))] == ["index-invalid", "index-changed"]


def test_compare__invalid_index_no_migration_creates__drop_it() -> None:
    have = obj("index", "public.Idx Dup", "table public.t", definition="D", validity="INVALID")
    [found] = compare(snap(), snap(have))
    assert found.code == "index-invalid"
    assert found.hint == 'Drop it: DROP INDEX CONCURRENTLY IF EXISTS public."Idx Dup";'


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        (
            "'a', 'b'",
            "'a', 'b', 'c'",
            "enum public.s differs: label 'c' exists in the database but no migration adds it",
        ),
        (
            "'a', 'b', 'c'",
            "'a', 'c'",
            "enum public.s differs: label 'b' is added by the migrations but does not exist in "
            "the database",
        ),
        (
            "'a', 'b'",
            "'b', 'a'",
            "enum public.s differs: labels: database 'b', 'a' / migrations 'a', 'b'",
        ),
    ],
)
def test_compare__enum_labels__in_words(expected: str, actual: str, message: str) -> None:
    [found] = compare(
        snap(obj("enum", "public.s", labels=expected)), snap(obj("enum", "public.s", labels=actual))
    )
    assert found.code == "enum-changed"
    assert found.message == message


def test_compare__extension_version_on_another_major__not_drift() -> None:
    want = obj("extension", "btree_gist", schema="public", version="1.8")
    have = obj("extension", "btree_gist", schema="public", version="1.7")
    assert compare(snap(want, major=18), snap(have, major=15)) == []
    assert codes(compare(snap(want), snap(have))) == [("extension-changed", "extension btree_gist")]


def test_compare__maintain_privilege_on_another_major__not_drift() -> None:
    want = obj("table", "public.t", grants="reader MAINTAIN, reader SELECT")
    have = obj("table", "public.t", grants="reader SELECT")
    assert compare(snap(want, major=18), snap(have, major=15)) == []
    assert [d.code for d in compare(snap(want), snap(have))] == ["table-changed"]


def test_compare__grouped_by_table__table_first_then_parts_by_kind() -> None:
    visits = obj("table", "public.visits", row_level_security="enabled")
    found = compare(
        snap(PATIENTS, visits),
        snap(
            obj("table", "public.patients", row_level_security="disabled"),
            obj("index", "public.idx_v", "table public.visits", definition="…"),
            obj("column", "public.visits.x", "table public.visits", type="text"),
            visits,
            obj("trigger", "public.patients.trg", "table public.patients", definition="…"),
            obj("extension", "pg_trgm"),
        ),
    )
    assert [(d.group, d.object) for d in found] == [
        ("extension pg_trgm", "extension pg_trgm"),
        ("table public.patients", "table public.patients"),
        ("table public.patients", "trigger public.patients.trg"),
        ("table public.visits", "column public.visits.x"),
        ("table public.visits", "index public.idx_v"),
    ]


@pytest.mark.parametrize(
    ("patterns", "left"),
    [
        ((), ["table public.spatial_ref_sys", "column public.patients.phone", "extension postgis"]),
        (("table public.spatial_ref_sys",), ["column public.patients.phone", "extension postgis"]),
        (("extension *",), ["table public.spatial_ref_sys", "column public.patients.phone"]),
        # A table's pattern covers its columns too (they belong to it).
        (("table public.patients",), ["table public.spatial_ref_sys", "extension postgis"]),
        (("* public.patients.ph*",), ["table public.spatial_ref_sys", "extension postgis"]),
        (
            ("TABLE public.spatial_ref_sys",),
            ["table public.spatial_ref_sys", "column public.patients.phone", "extension postgis"],
        ),
    ],
)
def test_compare__ignore_patterns(patterns: tuple[str, ...], left: list[str]) -> None:
    found = compare(
        snap(PATIENTS),
        snap(
            PATIENTS,
            obj("table", "public.spatial_ref_sys"),
            obj("column", "public.patients.phone", "table public.patients", type="text"),
            obj("extension", "postgis"),
        ),
        ignore=patterns,
    )
    assert sorted(d.object for d in found) == sorted(left)


def test_ignored__matches_object_or_group() -> None:
    difference = Difference("x", "column public.t.c", "m", group="table public.t")
    assert ignored(difference, ["table public.t"])
    assert ignored(difference, ["column public.t.*"])
    assert not ignored(difference, ["table public.u"])


def test_difference__finding__the_reports_shape() -> None:
    message = "column public.patients.phone exists in the database but no migration creates it"
    difference = Difference(
        code="column-unexpected",
        object="column public.patients.phone",
        message=message,
        hint=None,
        group="table public.patients",
    )
    assert difference.finding() == {
        "check": "schema",
        "code": "column-unexpected",
        "object": "column public.patients.phone",
        "message": message,
        "hint": None,
        "since": None,
    }


# --- what the shadow replays, and how a failed replay is told ---------------------------------


def _file(name: str) -> MigrationFile:
    return MigrationFile(
        name=name, path=f"migrations/{name}.sql", abspath=Path("x"), kind=Kind.SQL, checksum="0"
    )


def _history(*names: str) -> History:
    return History(
        applied=tuple(
            Applied(id=i, name=name, run_on=datetime(2026, 1, 1, 0, 0, i))
            for i, name in enumerate(names)
        )
    )


def test_applied_files__recorded_order_up_suffix_renames_and_unknown_rows() -> None:
    files = [_file("001_a"), _file("002_b"), _file("003_c"), _file("004_new")]
    replay, unknown = applied_files(
        files,
        # Recorded order, not file order; `X.up` is node-pg-migrate's name for `X.up.sql`.
        _history("002_b", "001_a.up", "004_old", "gone", "002_b"),
        renamed={"004_old": "004_new"},
    )
    assert [f.name for f in replay] == ["002_b", "001_a", "004_new"]  # a duplicate row once
    assert unknown == ["gone"]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ('extension "uuid-ossp" is not available', "the extension 'uuid-ossp' is not available"),
        (
            'could not open extension control file "/usr/share/postgresql/12/extension/'
            'pgcrypto.control": No such file or directory',
            "the extension 'pgcrypto' is not available",
        ),
        ('role "reader" does not exist', "role 'reader' does not exist there"),
        ('relation "nowhere" does not exist', "do not replay into the shadow database"),
    ],
)
def test_replay_failed__told_with_the_file_and_what_to_do(message: str, words: str) -> None:
    failure = Failure(migration="001_a", file="migrations/001_a.sql", message=message, line=3)
    error = _replay_failed(failure, shadow="embedded PostgreSQL 18.6")
    assert words in error.message
    assert "migrations/001_a.sql:3" in error.message
    if "extension" in message:
        assert isinstance(error, ConfigurationError)
        assert "drift.shadow_url_env" in error.hint
