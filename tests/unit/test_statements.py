"""SQL text → sections, located statements, no-transaction reasons (pglast, no database)."""

from __future__ import annotations

import pytest

from hmig import statements
from hmig.model import Problem, Statement
from hmig.statements import Section, SqlProblem


def split_up(text: str) -> tuple[Statement, ...]:
    return statements.split(text, statements.up_section(text))


def split_problem(text: str) -> Problem:
    with pytest.raises(SqlProblem) as caught:
        split_up(text)
    return caught.value.problem


# --- sections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "up", "down"),
    [
        (
            "-- Up Migration\nCREATE TABLE a ();\n-- Down Migration\nDROP TABLE a;\n",
            Section("-- Up Migration\nCREATE TABLE a ();\n", 0),
            Section("-- Down Migration\nDROP TABLE a;\n", 35),
        ),
        (
            "--up migration\nSELECT 1;\n---- DOWN   MIGRATION\nSELECT 2;\n",
            Section("--up migration\nSELECT 1;\n", 0),
            Section("---- DOWN   MIGRATION\nSELECT 2;\n", 25),
        ),
        (
            "SELECT 0;\n -- - up Migration to do things\nSELECT 1;\n",
            Section(" -- - up Migration to do things\nSELECT 1;\n", 10),
            None,
        ),
        (
            "-- Down Migration\nDROP TABLE a;\n-- Up Migration\nCREATE TABLE a ();\n",
            Section("-- Up Migration\nCREATE TABLE a ();\n", 32),
            Section("-- Down Migration\nDROP TABLE a;\n", 0),
        ),
        (
            "CREATE TABLE a ();\n",
            Section("CREATE TABLE a ();\n", 0),
            None,
        ),
        (
            "CREATE TABLE a ();\n-- Down Migration\nDROP TABLE a;\n",
            Section("CREATE TABLE a ();\n", 0),
            Section("-- Down Migration\nDROP TABLE a;\n", 19),
        ),
        (
            "SELECT 0;\n\n\n-- Up Migration\nSELECT 1;\n",
            Section("\n\n-- Up Migration\nSELECT 1;\n", 10),
            None,
        ),
        (
            "-- Up-Migration\nSELECT 1;\n-- Down-Migration\nSELECT 2;\n",
            Section("-- Up-Migration\nSELECT 1;\n-- Down-Migration\nSELECT 2;\n", 0),
            None,
        ),
    ],
    ids=[
        "template",
        "dashes-and-spaces",
        "marker-with-trailing-words",
        "reverse-order",
        "no-markers",
        "only-down",
        "blank-lines-before-marker",
        "hyphenated-is-no-marker",
    ],
)
def test_sections__node_pg_migrate_markers__split_up_and_down(
    text: str, up: Section, down: Section | None
) -> None:
    assert statements.up_section(text) == up
    assert statements.down_section(text) == down


def test_up_section__only_a_down_marker__runs_nothing_of_the_down_sql() -> None:
    text = "CREATE TABLE a ();\n\n-- Down Migration\nDROP TABLE a;\n"

    found = split_up(text)

    assert [s.sql for s in found] == ["CREATE TABLE a ()"]


def test_up_section__markers_are_case_insensitive__up_marker_in_upper_case_is_found() -> None:
    text = "SELECT 0;\n-- UP MIGRATION\nSELECT 1;\n"

    assert statements.up_section(text) == Section("-- UP MIGRATION\nSELECT 1;\n", 10)


def test_up_section__marker_not_at_line_start__is_not_a_marker() -> None:
    text = "SELECT 1; -- Up Migration\nSELECT 2;\n"

    assert statements.up_section(text) == Section(text, 0)


# --- split: locations -------------------------------------------------------------------------


def test_split__statements_after_a_down_section__are_located_in_the_file() -> None:
    text = (
        "-- Down Migration\n"  # 1
        "DROP TABLE a;\n"  # 2
        "\n"  # 3
        "-- Up Migration\n"  # 4
        "CREATE TABLE a (id int);\n"  # 5
        "\n"  # 6
        "  INSERT INTO a VALUES (1); INSERT INTO a\n"  # 7
        "  VALUES (2);\n"  # 8
    )

    found = split_up(text)

    assert [(s.index, s.sql, s.line, s.column) for s in found] == [
        (0, "CREATE TABLE a (id int)", 5, 1),
        (1, "INSERT INTO a VALUES (1)", 7, 3),
        (2, "INSERT INTO a\n  VALUES (2)", 7, 29),
    ]


def test_split__comments_with_semicolons__do_not_split_and_are_skipped_for_the_line() -> None:
    text = (
        "SELECT 1; -- a ; comment\n"  # 1
        "-- note; still a comment\n"  # 2
        "\n"  # 3
        "  /* block ; comment */\n"  # 4
        "SELECT 2;\n"  # 5
        "/* ; */ SELECT 3;\n"  # 6
    )

    found = split_up(text)

    assert [(s.sql, s.line, s.column) for s in found] == [
        ("SELECT 1", 1, 1),
        ("SELECT 2", 5, 1),
        ("SELECT 3", 6, 9),
    ]


def test_split__dollar_quoted_bodies_and_do_blocks__stay_one_statement_each() -> None:
    text = (
        "CREATE FUNCTION f() RETURNS int AS $$\n"  # 1
        "BEGIN\n"
        "  RETURN 1;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql;\n"  # 5
        "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$;\n"  # 6
        "DO LANGUAGE plpgsql $$ BEGIN COMMIT; END $$;\n"  # 7
    )

    found = split_up(text)

    assert [(s.line, s.column) for s in found] == [(1, 1), (6, 1), (7, 1)]
    assert found[0].sql == (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql"
    )
    assert found[1].sql == "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$"
    assert found[2].sql == "DO LANGUAGE plpgsql $$ BEGIN COMMIT; END $$"
    assert all(s.no_transaction is None for s in found)


def test_split__unicode_before_a_statement__columns_count_characters() -> None:
    text = "-- é日本 ünïcødé\nSELECT 'üüü'; SELECT '日本'; SELECT 3;\n"

    found = split_up(text)

    assert [(s.sql, s.line, s.column) for s in found] == [
        ("SELECT 'üüü'", 2, 1),
        ("SELECT '日本'", 2, 15),
        ("SELECT 3", 2, 28),
    ]


def test_split__empty_statements_and_only_comments__yield_nothing() -> None:
    assert split_up("-- Up Migration\n;;\n-- nothing here\n") == ()


def test_split__trailing_statement_without_semicolon__is_kept() -> None:
    found = split_up("SELECT 1;\nSELECT 2\n")

    assert [(s.index, s.sql, s.line) for s in found] == [(0, "SELECT 1", 1), (1, "SELECT 2", 2)]


# --- split: no-transaction detection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"),
        ("REINDEX SCHEMA public", "REINDEX SCHEMA"),
        ("REINDEX DATABASE d", "REINDEX DATABASE"),
        ("REINDEX SYSTEM", "REINDEX SYSTEM"),
        ("CLUSTER", "CLUSTER without a table"),
        ("VACUUM t", "VACUUM"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("CREATE DATABASE d", "CREATE DATABASE"),
        ("DROP DATABASE d", "DROP DATABASE"),
        ("ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM"),
        (
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "ALTER TABLE … DETACH PARTITION … CONCURRENTLY",
        ),
        ("CREATE TABLESPACE ts LOCATION '/x'", "CREATE TABLESPACE"),
    ],
)
def test_split__statement_refused_in_a_transaction_block__carries_the_reason(
    sql: str, reason: str
) -> None:
    text = f"CREATE TABLE t (a int);\n{sql};\n"

    found = split_up(text)

    assert found[0].no_transaction is None
    assert found[1].no_transaction == reason
    assert found[1].line == 2


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "REINDEX INDEX i",
        "REINDEX TABLE t",
        "CLUSTER t USING i",
        "ANALYZE t",
        "ALTER TABLE p DETACH PARTITION c",
        "ALTER TABLE t ADD COLUMN b int",
        "SELECT 'VACUUM'",
        "ALTER TYPE mood ADD VALUE 'meh'",
    ],
)
def test_split__statement_allowed_in_a_transaction__has_no_reason(sql: str) -> None:
    (found,) = split_up(f"{sql};\n")

    assert found.no_transaction is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "ALTER TYPE mood ADD VALUE 'meh';\nUPDATE t SET m = 'meh';\n",
            "ALTER TYPE … ADD VALUE 'meh' used later in the same migration",
        ),
        (
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'it''s' BEFORE 'ok';\nSELECT 'it''s'::mood;\n",
            "ALTER TYPE … ADD VALUE 'it''s' used later in the same migration",
        ),
        ("ALTER TYPE mood ADD VALUE 'meh';\nUPDATE t SET m = 'ok';\n", None),
        ("UPDATE t SET m = 'meh';\nALTER TYPE mood ADD VALUE 'meh';\n", None),
        ("ALTER TYPE mood RENAME VALUE 'a' TO 'meh';\nSELECT 'meh'::mood;\n", None),
    ],
    ids=["used-later", "quoted-literal", "not-used", "used-before", "rename-value"],
)
def test_split__alter_type_add_value__needs_no_transaction_only_when_used_later(
    text: str, reason: str | None
) -> None:
    found = split_up(text)

    enum_statement = next(s for s in found if s.sql.startswith("ALTER TYPE"))
    assert enum_statement.no_transaction == reason
    assert all(s.no_transaction is None for s in found if s is not enum_statement)


# --- split: problems --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword", "line", "column"),
    [
        ("SELECT 1;\nBEGIN;\nSELECT 2;\n", "BEGIN", 2, 1),
        ("SELECT 1;\n  START TRANSACTION;\n", "START", 2, 3),
        ("SELECT 1;\nSELECT 2; COMMIT;\n", "COMMIT", 2, 11),
        ("-- Up Migration\nSELECT 1;\nROLLBACK;\n", "ROLLBACK", 3, 1),
        ("SELECT 1;\nEND;\n", "COMMIT", 2, 1),
        ("PREPARE TRANSACTION 'x';\n", "PREPARE", 1, 1),
    ],
    ids=["begin", "start", "commit", "rollback", "end", "prepare"],
)
def test_split__transaction_control__is_rejected_with_its_line(
    text: str, keyword: str, line: int, column: int
) -> None:
    problem = split_problem(text)

    assert problem.message.startswith(f"{keyword} inside a migration: hmig runs each migration")
    assert (problem.line, problem.column) == (line, column)


def test_split__begin_alone_at_the_start__is_rejected() -> None:
    problem = split_problem("BEGIN;\nCREATE TABLE a ();\n")

    assert problem.message.startswith("BEGIN inside a migration")
    assert (problem.line, problem.column) == (1, 1)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("SELECT 1;\nSELECT 2;\n  SELEC 3;\n", 3, 3),
        ("-- Down Migration\nDROP TABLE a;\n\n-- Up Migration\nSELECT 1;\nSELEC 2;\n", 6, 1),
        ("-- é日本\nSELECT 'ü'; SELEC 2;\n", 2, 13),
        ("CREATE TABLE a (\n  id int,\n  name text,,\n);\n", 3, 13),
    ],
    ids=["third-line", "after-down-section", "after-unicode", "inside-a-statement"],
)
def test_split__syntax_error__is_located_at_line_and_column(
    text: str, line: int, column: int
) -> None:
    problem = split_problem(text)

    assert problem.message.startswith("syntax error at or near ")
    assert (problem.line, problem.column) == (line, column)


def test_sql_problem__carries_the_problem_as_message() -> None:
    problem = split_problem("SELEC 1;\n")

    assert str(SqlProblem(problem)) == problem.message == 'syntax error at or near "SELEC"'


# --- what hmig refuses to send: psql meta-commands, COPY to or from the client, binary ---------


@pytest.mark.parametrize(
    ("text", "command", "advice", "line", "column"),
    [
        ("CREATE TABLE a ();\n\\i other.sql\n", "\\i", "in this migration", 2, 1),
        ("SELECT 1;\n\\ir ../seed.sql\n", "\\ir", "in this migration", 2, 1),
        ("SELECT 1;\n\\copy a from 'a.csv' csv\n", "\\copy", "COPY … FROM 'file'", 2, 1),
        ("\\set ON_ERROR_STOP on\nSELECT 1;\n", "\\set", "psql variables", 1, 1),
        ("SELECT 1;\n\\connect other\nSELECT 2;\n", "\\connect", "hmig environment", 2, 1),
        ("SELECT 1 \\gset\n", "\\gset", "as SQL", 1, 10),
    ],
    ids=["include", "include-relative", "copy", "set", "connect", "after-a-statement"],
)
def test_split__psql_meta_command__is_refused_as_such_with_what_to_do(
    text: str, command: str, advice: str, line: int, column: int
) -> None:
    with pytest.raises(SqlProblem) as caught:
        split_up(text)

    problem = caught.value.problem
    assert problem.message.startswith(f"{command} is a psql meta-command: hmig sends SQL")
    assert advice in problem.message
    assert (problem.line, problem.column) == (line, column)
    assert caught.value.refused is True


def test_split__backslashes_in_strings_and_comments__are_not_meta_commands() -> None:
    text = "-- \\i evil.sql\nSELECT '\\i not a command';\n/* \\connect x */ SELECT E'\\\\';\n"

    assert [s.line for s in split_up(text)] == [2, 3]


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ("CREATE TABLE a (id int);\nCOPY a FROM stdin;\n1\n2\n\\.\n", "FROM stdin", 2),
        (
            "CREATE TABLE a (id int);\n\n  copy a (id) from STDIN with (format csv);\n",
            "FROM stdin",
            3,
        ),
        ("COPY a TO stdout;\n", "TO stdout", 1),
        ("SELECT 1;\nCOPY (SELECT 1) TO STDOUT;\n", "TO stdout", 2),
    ],
    ids=["from-stdin-with-rows", "from-stdin-alone", "to-stdout", "query-to-stdout"],
)
def test_split__copy_to_or_from_the_client__is_refused_with_its_line(
    text: str, words: str, line: int
) -> None:
    with pytest.raises(SqlProblem) as caught:
        split_up(text)

    problem = caught.value.problem
    assert problem.message.startswith(f"COPY … {words}")
    assert "on the database server" in problem.message
    assert problem.line == line
    assert caught.value.refused is True


def test_split__copy_with_a_server_file__is_a_statement() -> None:
    (statement,) = split_up("COPY a FROM '/srv/a.csv' WITH (FORMAT csv);\n")

    assert statement.sql.startswith("COPY a FROM")


def test_split__plain_syntax_error__is_not_marked_refused() -> None:
    with pytest.raises(SqlProblem) as caught:
        split_up("SELEC 1;\n")

    assert caught.value.refused is False


def test_split__many_statements__each_is_located_on_its_own_line() -> None:
    text = "".join(f"INSERT INTO t VALUES ({i});\n" for i in range(20_000))

    found = split_up(text)

    assert len(found) == 20_000
    assert [(s.line, s.column) for s in found[::4999]] == [
        (1, 1),
        (5000, 1),
        (9999, 1),
        (14998, 1),
        (19997, 1),
    ]


@pytest.mark.parametrize(
    ("sql", "start", "where"),
    [
        ("SELECT 1; COMMIT;", "COMMIT inside a migration", (1, 11)),
        ("SELECT 1;\nBEGIN", "BEGIN inside a migration", (2, 1)),
        ("COPY t FROM stdin", "COPY … FROM stdin", (1, 1)),
        ("\\i other.sql", "\\i is a psql meta-command", (1, 1)),
    ],
)
def test_forbidden_statement__rendered_sql__names_what_hmig_refuses(
    sql: str, start: str, where: tuple[int, int]
) -> None:
    problem = statements.forbidden_statement(sql)

    assert problem is not None
    assert problem.message.startswith(start)
    assert (problem.line, problem.column) == where


@pytest.mark.parametrize(
    "sql",
    ["CREATE TABLE t (id int)", "SELEC 1", "DO $$ BEGIN PERFORM 1; END $$", "SAVEPOINT s", ""],
    ids=["valid", "syntax-error-left-to-the-server", "plpgsql-block", "savepoint", "empty"],
)
def test_forbidden_statement__anything_else__is_none(sql: str) -> None:
    assert statements.forbidden_statement(sql) is None


@pytest.mark.parametrize(
    ("text", "what", "line", "column"),
    [
        ("CREATE TABLE a ();\n\x00\nCREATE TABLE b ();\n", "a NUL byte (\\x00)", 2, 1),
        ("\x00\x00\x00\x01\x02\x03", "a NUL byte (\\x00)", 1, 1),
        ("SELECT 1;\nSELECT '\x1b[31m';\n", "the control character \\x1b", 2, 9),
        ("SELECT 1;\x7f", "the control character \\x7f", 1, 10),
    ],
    ids=["nul-line", "nul-first", "escape", "delete"],
)
def test_binary_problem__first_control_character__is_located(
    text: str, what: str, line: int, column: int
) -> None:
    problem = statements.binary_problem(text)

    assert problem == Problem(
        f"{what}: this is binary content, not SQL text; save the migration as plain UTF-8 text",
        line,
        column,
    )


def test_binary_problem__whitespace_controls_and_unicode__are_text() -> None:
    assert statements.binary_problem("SELECT\t1;\r\n\x0b\x0c-- é 日本 \u00a0\n") is None


def test_visible__control_characters__are_written_as_escapes() -> None:
    shown = statements.visible("002_new\nline\t\x1b[31m\u202e\x00 café 病院.sql")

    assert shown == "002_new\\nline\\t\\x1b[31m\\u202e\\x00 café 病院.sql"


# --- locate -----------------------------------------------------------------------------------


STATEMENT = Statement(
    index=0,
    sql="CREATE TABLE a (\n  id int,\n  x nosuchtype\n)",
    line=5,
    column=3,
)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (1, (5, 3)),
        (14, (5, 16)),
        (17, (5, 19)),
        (18, (6, 1)),
        (20, (6, 3)),
        (32, (7, 5)),
        (41, (7, 14)),
        (42, (7, 15)),
        (43, (8, 1)),
        (None, (5, 3)),
        (0, (5, 3)),
    ],
)
def test_locate__server_position__maps_to_file_line_and_column(
    position: int | None, expected: tuple[int, int]
) -> None:
    assert statements.locate(STATEMENT, position) == expected


def test_locate__position_found_by_text__points_at_the_offending_word() -> None:
    position = STATEMENT.sql.index("nosuchtype") + 1

    assert statements.locate(STATEMENT, position) == (7, 5)


def test_locate__statement_without_location__returns_none() -> None:
    generated = Statement(index=0, sql="SELECT 1\nFROM x")

    assert statements.locate(generated, 10) == (None, None)


def test_locate__statements_from_split__round_trip_to_the_file() -> None:
    text = "-- Down Migration\nDROP TABLE a;\n-- Up Migration\nSELECT 1;\n  SELECT\n    bad_col\n"
    found = split_up(text)
    second = found[1]

    line, column = statements.locate(second, second.sql.index("bad_col") + 1)

    assert (line, column) == (6, 5)
    assert text.splitlines()[line - 1][column - 1 :] == "bad_col"
