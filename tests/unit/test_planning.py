"""(files, history) → order and plan: pure values in, values out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hmig import planning
from hmig.errors import (
    ConfigurationError,
    ExitCode,
    ManifestError,
    MigrationFileError,
    StrictOrderViolation,
)
from hmig.model import Applied, History, Kind, MigrationFile, Notice, Problem

T0 = datetime(2024, 1, 2, 3, 4, 5)


def migration(name: str, *, problem: Problem | None = None) -> MigrationFile:
    return MigrationFile(
        name=name,
        path=f"migrations/{name}.sql",
        abspath=Path("x"),
        kind=Kind.SQL,
        checksum=f"sha256:{name}",
        problem=problem,
    )


def files(*names: str) -> tuple[MigrationFile, ...]:
    return tuple(migration(n) for n in names)


def history(*names: str) -> History:
    return History(
        applied=tuple(
            Applied(id=i + 1, name=n, run_on=T0 + timedelta(minutes=i)) for i, n in enumerate(names)
        )
    )


def codes(notices: tuple[Notice, ...]) -> list[str]:
    return [n.code for n in notices]


# --- sort_key / order -------------------------------------------------------------------------

DEFAULT_ORDER = [
    "005-x",
    "006-y",
    "1678886400000_a",
    "1762003868919_b",
    "add-subdomain",
    "create-x",
]


def test_sort_key__mixed_prefixes__numbers_by_value_then_unprefixed_by_name() -> None:
    shuffled = DEFAULT_ORDER[::-1]
    random.Random(7).shuffle(shuffled)

    assert sorted(shuffled, key=planning.sort_key) == DEFAULT_ORDER


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("005-x", "006-y"),
        ("9_z", "10_a"),
        ("006-y", "1678886400000_a"),
        ("1762003868919_b", "20240101120000_c"),
        ("1762003868919_b", "add-subdomain"),
        ("add-subdomain", "create-x"),
        ("01_b", "1_a"),
        ("1_a", "1_b"),
        ("1_a", "1_a_more"),
        ("Zebra", "apple"),
    ],
)
def test_sort_key__pair__earlier_sorts_first(earlier: str, later: str) -> None:
    assert planning.sort_key(earlier) < planning.sort_key(later)


def test_sort_key__values__are_exactly_prefix_number_and_name() -> None:
    assert planning.sort_key("005-x") == (0, 5, "005-x")
    assert planning.sort_key("add-subdomain") == (1, 0, "add-subdomain")


def test_order__no_explicit_order__sorts_by_default_key() -> None:
    given = files(*reversed(DEFAULT_ORDER))

    ordered = planning.order(given, explicit=None, manifest_file="hmig.yml")

    assert [m.name for m in ordered] == DEFAULT_ORDER


def test_order__explicit_order__is_followed_exactly() -> None:
    explicit = ["1762003868919_b", "add-subdomain", "005-x", "create-x", "1678886400000_a", "006-y"]

    ordered = planning.order(files(*DEFAULT_ORDER), explicit=explicit, manifest_file="hmig.yml")

    assert [m.name for m in ordered] == explicit


def test_order__explicit_order_missing_a_file__raises_naming_its_path() -> None:
    with pytest.raises(ManifestError) as caught:
        planning.order(files("001_a", "002_b", "003_c"), explicit=["001_a"], manifest_file="h.yml")

    error = caught.value
    assert error.key == "migrations.order"
    assert error.file == "h.yml"
    assert error.message == (
        "h.yml: migrations.order: migrations.order does not list "
        "migrations/002_b.sql, migrations/003_c.sql"
    )
    assert error.exit_code is ExitCode.CANNOT


def test_order__explicit_order_naming_no_file__raises_naming_the_entry() -> None:
    with pytest.raises(ManifestError) as caught:
        planning.order(
            files("001_a"), explicit=["001_a", "002_gone", "003_typo"], manifest_file="hmig.yml"
        )

    error = caught.value
    assert error.key == "migrations.order"
    assert "migrations.order lists '002_gone', '003_typo', but no such migration file exists" in (
        error.message
    )


# --- plan -------------------------------------------------------------------------------------


def test_plan__nothing_applied__everything_pending_in_file_order() -> None:
    result = planning.plan(files("001_a", "002_b"), History(applied=()))

    assert [m.name for m in result.pending] == ["001_a", "002_b"]
    assert result.to_run == result.pending
    assert result.applied == ()
    assert result.out_of_order == ()
    assert result.notices == ()


def test_plan__history__applied_keep_recorded_order_and_pending_keep_file_order() -> None:
    given = files("001_a", "002_b", "003_c", "004_d", "005_e")
    recorded = history("003_c", "001_a")

    result = planning.plan(given, recorded)

    assert result.files == given
    assert [row.name for row in result.applied] == ["003_c", "001_a"]
    assert result.applied == recorded.applied
    assert [m.name for m in result.pending] == ["002_b", "004_d", "005_e"]
    assert [m.name for m in result.to_run] == ["002_b", "004_d", "005_e"]
    assert result.unknown == ()


def test_plan__pending_before_an_applied_one__is_out_of_order_with_a_notice() -> None:
    given = files("001_a", "002_b", "003_c", "004_d", "005_e")

    result = planning.plan(given, history("001_a", "004_d"))

    assert result.out_of_order == ("002_b", "003_c")
    assert result.notices == (
        Notice(
            code="out-of-order",
            message="002_b sorts before the applied migration 004_d; "
            "it will run after everything already applied",
            migration="002_b",
            file="migrations/002_b.sql",
        ),
        Notice(
            code="out-of-order",
            message="003_c sorts before the applied migration 004_d; "
            "it will run after everything already applied",
            migration="003_c",
            file="migrations/003_c.sql",
        ),
    )


def test_plan__out_of_order_notice__names_the_nearest_later_applied_migration() -> None:
    given = files("001_a", "002_b", "003_c", "004_d")

    result = planning.plan(given, history("004_d", "002_b"))

    assert result.out_of_order == ("001_a", "003_c")
    assert [n.message.split(";")[0] for n in result.notices] == [
        "001_a sorts before the applied migration 002_b",
        "003_c sorts before the applied migration 004_d",
    ]


def test_plan__pending_after_every_applied__is_not_out_of_order() -> None:
    result = planning.plan(files("001_a", "002_b", "003_c"), history("001_a", "002_b"))

    assert result.out_of_order == ()
    assert "out-of-order" not in codes(result.notices)


def test_plan__legacy_up_row__counts_as_the_migration_applied() -> None:
    result = planning.plan(files("001_a", "002_b"), history("001_a.up"))

    assert [m.name for m in result.pending] == ["002_b"]
    assert result.unknown == ()
    assert result.notices == (
        Notice(
            code="legacy-up-name",
            message="history row '001_a.up' (node-pg-migrate's default loader) "
            "counts as '001_a' applied",
            migration="001_a",
        ),
    )


def test_plan__row_without_file__is_unknown_and_left_to_history_drift() -> None:
    recorded = history("001_a", "000_deleted")

    result = planning.plan(files("001_a", "002_b"), recorded)

    assert result.unknown == (recorded.applied[1],)
    assert [m.name for m in result.pending] == ["002_b"]
    assert result.notices == ()  # `history_drift` reports it (tests/unit/test_history_drift.py)


def test_plan__same_name_twice_in_history__is_applied_once() -> None:
    result = planning.plan(files("001_a", "002_b"), history("001_a", "002_b", "001_a"))

    assert result.pending == ()
    assert result.unknown == ()
    assert result.notices == ()


def test_plan__several_kinds_of_rows__notices_in_a_stable_order() -> None:
    given = files("001_a", "002_b", "003_c")

    result = planning.plan(given, history("003_c", "001_a.up", "gone", "003_c"))

    assert codes(result.notices) == ["legacy-up-name", "out-of-order"]
    assert result.out_of_order == ("002_b",)
    assert [r.name for r in result.unknown] == ["gone"]


# --- target -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "to_run"),
    [
        (None, ["002_b", "003_c", "004_d"]),
        ("002_b", ["002_b"]),
        ("003_c", ["002_b", "003_c"]),
        ("004_d", ["002_b", "003_c", "004_d"]),
        ("001_a", []),
    ],
)
def test_plan__target__cuts_to_run_after_it(target: str | None, to_run: list[str]) -> None:
    result = planning.plan(
        files("001_a", "002_b", "003_c", "004_d"), history("001_a"), target=target
    )

    assert [m.name for m in result.to_run] == to_run
    assert [m.name for m in result.pending] == ["002_b", "003_c", "004_d"]


def test_plan__target_already_applied_after_pending_ones__runs_nothing() -> None:
    result = planning.plan(files("001_a", "002_b", "003_c"), history("003_c"), target="003_c")

    assert result.to_run == ()
    assert [m.name for m in result.pending] == ["001_a", "002_b"]


def test_plan__unknown_target__raises_configuration_error_exit_2() -> None:
    with pytest.raises(ConfigurationError) as caught:
        planning.plan(files("001_a"), History(applied=()), target="001_b")

    assert caught.value.message == "--target '001_b' is not a migration of this project"
    assert caught.value.exit_code is ExitCode.CANNOT
    assert int(caught.value.exit_code) == 2


def test_plan__target_only_in_history__is_not_a_migration() -> None:
    with pytest.raises(ConfigurationError):
        planning.plan(files("001_a"), history("000_gone"), target="000_gone")


# --- check_order / check_runnable -------------------------------------------------------------


def test_check_order__strict_with_out_of_order__raises_exit_1_naming_them() -> None:
    result = planning.plan(files("001_a", "002_b", "003_c", "004_d"), history("001_a", "004_d"))

    with pytest.raises(StrictOrderViolation) as caught:
        planning.check_order(result, strict=True)

    assert caught.value.message == (
        "2 pending migration(s) sort before an applied one: 002_b, 003_c"
    )
    assert caught.value.exit_code is ExitCode.NO
    assert int(caught.value.exit_code) == 1
    assert caught.value.outcome == "failed"
    assert "strict_order: true" in caught.value.hint


def test_check_order__not_strict__does_not_raise() -> None:
    result = planning.plan(files("001_a", "002_b", "003_c"), history("001_a", "003_c"))
    assert result.out_of_order == ("002_b",)

    planning.check_order(result, strict=False)


def test_check_order__strict_in_order__does_not_raise() -> None:
    result = planning.plan(files("001_a", "002_b"), history("001_a"))

    planning.check_order(result, strict=True)


def test_check_runnable__broken_files__raises_naming_every_one() -> None:
    broken_a = migration("001_a", problem=Problem('syntax error at or near "SELEC"', 3, 5))
    fine = migration("002_b")
    broken_c = migration("003_c", problem=Problem("COMMIT inside a migration", 7, 1))

    with pytest.raises(MigrationFileError) as caught:
        planning.check_runnable([broken_a, fine, broken_c])

    error = caught.value
    assert (error.file, error.line, error.column) == ("migrations/001_a.sql", 3, 5)
    assert error.message == (
        'migrations/001_a.sql:3:5: syntax error at or near "SELEC"\n'
        "  migrations/003_c.sql:7: COMMIT inside a migration"
    )
    assert "002_b" not in error.message
    assert error.hint.startswith("Nothing was run.")
    assert error.exit_code is ExitCode.CANNOT


def test_check_runnable__no_problems__does_not_raise() -> None:
    planning.check_runnable(files("001_a", "002_b"))
    planning.check_runnable([])


def test_without__reverted_migrations__lose_their_rows_legacy_and_renamed_ones_too() -> None:
    # What a rollback left, when the session ended and the history cannot be read again.
    before = history("001_a", "002_b.up", "old_c", "unknown_row")
    after = planning.without(
        before,
        reverted=["002_b", "003_c"],
        files=files("001_a", "002_b", "003_c"),
        renamed={"old_c": "003_c"},
    )
    assert [row.name for row in after.applied] == ["001_a", "unknown_row"]
    assert after.applied[0] is before.applied[0]
