"""`hmig new`'s pure logic: file names, templates, and the sorts-last check."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from hmig.errors import ConfigurationError
from hmig.new_migration import check_sorts_last, file_name, template

NOW = 1767225600000  # 2026-01-01T00:00:00Z

# node-pg-migrate 9's section markers (src/sqlMigration.ts), the test's own oracle.
_UP = re.compile(r"^\s*--[\s-]*up\s+migration", re.IGNORECASE | re.MULTILINE)
_DOWN = re.compile(r"^\s*--[\s-]*down\s+migration", re.IGNORECASE | re.MULTILINE)


@pytest.mark.parametrize(
    ("description", "kind", "expected"),
    [
        ("add subdomain to tenants", "sql", f"{NOW}_add-subdomain-to-tenants.sql"),
        ("Add Subdomain To Tenants", "js", f"{NOW}_add-subdomain-to-tenants.js"),
        ("create_users_table", "sql", f"{NOW}_create-users-table.sql"),
        ("  add   lab results  ", "sql", f"{NOW}_add-lab-results.sql"),
        ("add lab-results (v2)!", "js", f"{NOW}_add-lab-results-v2.js"),
        ("users: add e-mail, phone & fax", "sql", f"{NOW}_users-add-e-mail-phone-fax.sql"),
        ("--drop__old--index--", "sql", f"{NOW}_drop-old-index.sql"),
        ("tenant's branding.colors", "sql", f"{NOW}_tenant-s-branding-colors.sql"),
        ("2fa for admins", "js", f"{NOW}_2fa-for-admins.js"),
        ("Café menü", "sql", f"{NOW}_cafe-menu.sql"),
        ("tab\tand\nnewline", "sql", f"{NOW}_tab-and-newline.sql"),
        ("x", "sql", f"{NOW}_x.sql"),
    ],
)
def test_file_name__slug(description: str, kind: str, expected: str) -> None:
    assert file_name(description, now_ms=NOW, kind=kind) == expected


@pytest.mark.parametrize("now_ms", [0, 5, 1700000000000, 99999999999999])
def test_file_name__prefix_is_the_milliseconds_as_given(now_ms: int) -> None:
    assert file_name("a", now_ms=now_ms, kind="sql") == f"{now_ms}_a.sql"


@pytest.mark.parametrize("description", ["", "   ", "___", "-- !! --", "日本語", "🙂"])
def test_file_name__empty_slug__value_error(description: str) -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        file_name(description, now_ms=NOW, kind="sql")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "ts", "now_ms": NOW}, "kind must be one of sql, js"),
        ({"kind": ".sql", "now_ms": NOW}, "kind must be one of sql, js"),
        ({"kind": "sql", "now_ms": -1}, "non-negative"),
    ],
)
def test_file_name__bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        file_name("a", **kwargs)  # type: ignore[arg-type]


def test_file_name__longest_recordable_name() -> None:
    # pgmigrations.name is varchar(255): prefix (13) + "_" + slug must fit.
    fits = "a" * (255 - 14)
    assert file_name(fits, now_ms=NOW, kind="sql") == f"{NOW}_{fits}.sql"
    with pytest.raises(ValueError, match="at most 255"):
        file_name(fits + "a", now_ms=NOW, kind="sql")


def _sections(text: str) -> tuple[str, str]:
    """Up and down sections as node-pg-migrate 9 splits a .sql file."""
    up = _UP.search(text)
    down = _DOWN.search(text)
    assert up is not None
    assert down is not None
    assert up.start() < down.start()
    return text[up.start() : down.start()], text[down.start() :]


@pytest.mark.parametrize(
    ("author", "author_line"),
    [
        ("Jane Doe <jane@example.com>", "-- Author: Jane Doe <jane@example.com>\n"),
        (None, None),
        ("  ", None),
    ],
)
def test_template__sql(author: str | None, author_line: str | None) -> None:
    text = template("sql", description="Add subdomain to tenants", date="2026-01-01", author=author)
    header = "-- Migration: Add subdomain to tenants\n-- Created: 2026-01-01\n"
    assert text.startswith(header + (author_line or "") + "\n-- Up Migration\n")
    assert text.endswith("\n-- Down Migration\n")
    assert ("Author" in text) is (author_line is not None)
    up, down = _sections(text)
    assert up.strip() == "-- Up Migration"
    assert down.strip() == "-- Down Migration"


@pytest.mark.parametrize(
    "description",
    [
        "Down migration of users",
        "up migration",
        "-- Down Migration",
        "fix\n-- Down Migration\nDROP TABLE users;",
    ],
)
def test_template__sql__description_never_reads_as_a_marker(description: str) -> None:
    text = template("sql", description=description, date="2026-01-01", author=description)
    up, down = _sections(text)
    assert up.strip() == "-- Up Migration"
    assert down.strip() == "-- Down Migration"
    assert all(line.startswith("-- ") for line in text.splitlines() if line)


@pytest.mark.parametrize(
    ("author", "expected_header"),
    [
        (
            "Jane Doe",
            "/**\n * Migration: Add lab results\n * Created: 2026-01-01\n"
            " * Author: Jane Doe\n */\n",
        ),
        (None, "/**\n * Migration: Add lab results\n * Created: 2026-01-01\n */\n"),
    ],
)
def test_template__js(author: str | None, expected_header: str) -> None:
    text = template("js", description="Add lab results", date="2026-01-01", author=author)
    assert text == (
        expected_header + "\nexports.up = (pgm) => {};\n\nexports.down = (pgm) => {};\n"
    )


def test_template__js__comment_cannot_be_closed_by_the_description() -> None:
    text = template("js", description="strip */ from\nnotes", date="2026-01-01", author="a */ b")
    comment, _, code = text.partition(" */\n")
    assert "*/" not in comment
    assert code == "\nexports.up = (pgm) => {};\n\nexports.down = (pgm) => {};\n"
    assert " * Migration: strip *\\/ from notes\n" in comment


def test_template__unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        template("mjs", description="a", date="2026-01-01", author=None)


@pytest.mark.parametrize(
    ("name", "existing"),
    [
        (f"{NOW}_new", []),
        (f"{NOW}_new", ["1700000000000_old", "1767225599999_just-before"]),
        (f"{NOW}_new.sql", ["1700000000000_old"]),
        (f"{NOW}_new.js", ["1700000000000_old"]),
        # Unprefixed names (the team's add-subdomain-to-tenants.sql) do not count.
        (f"{NOW}_new", ["1700000000000_old", "add-subdomain-to-tenants", "zzz"]),
        (f"{NOW}_new", ["add-subdomain-to-tenants"]),
        # Same prefix: ties go by name, and "new" sorts after "a-thing".
        (f"{NOW}_new", [f"{NOW}_a-thing"]),
        # Short index-style prefixes sort by value, before any millisecond timestamp.
        (f"{NOW}_new", ["005-create-custom-fields-tables", "099_x"]),
    ],
)
def test_check_sorts_last__accepts(name: str, existing: Sequence[str]) -> None:
    check_sorts_last(name, existing=existing)


@pytest.mark.parametrize(
    ("name", "existing", "before"),
    [
        (f"{NOW}_new", [f"{NOW + 1}_future"], f"{NOW + 1}_future"),
        (f"{NOW}_new.sql", ["1700000000000_a", "1800000000000_b"], "1800000000000_b"),
        # A 14-digit YYYYMMDDhhmmss prefix is just a big number: it sorts after any ms stamp.
        (f"{NOW}_new", ["20240101120000_utc-style"], "20240101120000_utc-style"),
        (f"{NOW}_a", [f"{NOW}_b"], f"{NOW}_b"),
        (f"{NOW}_new", ["add-subdomain-to-tenants", f"{NOW + 5}_x"], f"{NOW + 5}_x"),
    ],
)
def test_check_sorts_last__refuses_naming_the_later_migration(
    name: str, existing: Sequence[str], before: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"would sort before '{before}'") as raised:
        check_sorts_last(name, existing=existing)
    assert "clock" in raised.value.hint


@pytest.mark.parametrize("name", [f"{NOW}_same", f"{NOW}_same.sql"])
def test_check_sorts_last__same_name__refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="already exists"):
        check_sorts_last(name, existing=[f"{NOW}_same"])


def test_check_sorts_last__agrees_with_file_name() -> None:
    new = file_name("add lab results", now_ms=NOW, kind="sql")
    check_sorts_last(new, existing=[f"{NOW - 1}_earlier", "unprefixed"])
    with pytest.raises(ConfigurationError):
        check_sorts_last(new, existing=[f"{NOW}_zzz"])
