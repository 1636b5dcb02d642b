"""hmig.postgres.relations on a real server: sizes of real tables, analysed or not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql

from hmig.postgres.connection import PgSession, connect, describe
from hmig.postgres.relations import relation_sizes
from tests.conftest import Database

ROWS = 50_000


@pytest.fixture
def session(database: Database) -> Iterator[PgSession]:
    # Autovacuum off: an ANALYZE by it during the test would turn estimates into statistics.
    database.execute(
        "CREATE TABLE patients (id bigint PRIMARY KEY, name text NOT NULL, born date)"
        " WITH (autovacuum_enabled = false);"
        "INSERT INTO patients SELECT g, 'patient ' || g, date '1950-01-01' + g % 20000 "
        f"FROM generate_series(1, {ROWS}) AS g;"
        'CREATE SCHEMA clinic; CREATE TABLE clinic."Doctors" (id int);'
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (id);"
        "CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (20000);"
        "CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (20000) TO (40000)"
        " WITH (autovacuum_enabled = false);"
        "INSERT INTO events SELECT g, current_date FROM generate_series(1, 39999) AS g;"
        "ANALYZE events_a;"
        "CREATE VIEW adults AS SELECT * FROM patients;"
    )
    opened = connect(database.url, target=describe(database.url))
    try:
        yield opened
    finally:
        opened.close()


def test_rows_from_statistics_or_from_the_size(session: PgSession) -> None:
    never = relation_sizes(session, ["patients"])["patients"]
    assert never.estimated  # never analysed: estimated from its pages and row width
    assert never.rows is not None and ROWS / 2 < never.rows < ROWS * 2
    assert never.bytes > 3 * 1024 * 1024  # pg_total_relation_size: heap and primary key

    session.run(sql.SQL("ANALYZE patients"))
    analysed = relation_sizes(session, ["patients"])["patients"]
    assert (analysed.rows, analysed.estimated) == (ROWS, False)

    # Statistics are scaled to a table that grew since, as the planner does.
    session.run(
        sql.SQL("INSERT INTO patients SELECT g, 'p' || g FROM generate_series({}, {}) AS g").format(
            sql.Literal(ROWS + 1), sql.Literal(2 * ROWS)
        )
    )
    grown = relation_sizes(session, ["patients"])["patients"]
    assert not grown.estimated
    assert grown.rows is not None and 1.6 * ROWS < grown.rows < 2.4 * ROWS


def test_names_resolve_like_the_migration_would(session: PgSession) -> None:
    sizes = relation_sizes(
        session,
        ["patients", "public.patients", "clinic.Doctors", "clinic.doctors", "not_yet_created"],
    )
    # Absent: a table an earlier pending migration creates, and a case that does not match.
    assert set(sizes) == {"patients", "public.patients", "clinic.Doctors"}
    assert sizes["patients"].bytes == sizes["public.patients"].bytes
    assert sizes["clinic.Doctors"].rows == 0 and sizes["clinic.Doctors"].table == "clinic.Doctors"
    # A view has no rows of its own; no names, no query.
    assert relation_sizes(session, ["adults"])["adults"].rows is None
    assert relation_sizes(session, []) == {}
    # The session's search_path decides unqualified names.
    session.run(sql.SQL("SET search_path = clinic, public"))
    session.run(sql.SQL("CREATE TABLE clinic.patients (id int)"))
    assert relation_sizes(session, ["patients"])["patients"].rows == 0


def test_a_partitioned_table_counts_its_partitions(session: PgSession) -> None:
    session.begin(read_only=True)  # as `plan` runs: read-only is enough
    try:
        size = relation_sizes(session, ["events", "events_a"])
    finally:
        session.rollback()
    events, first = size["events"], size["events_a"]
    assert first.rows == 19_999 and not first.estimated
    assert events.estimated  # events_b was never analysed
    assert events.rows is not None and 30_000 < events.rows < 60_000
    assert events.bytes > first.bytes > 0
