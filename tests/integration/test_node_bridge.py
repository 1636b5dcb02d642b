"""NodeBridge against real Node and the real node-pg-migrate 9.0.0 package; no database.

`pgm.db` queries go to a plain Python function that records them and answers from a table.
"""

from __future__ import annotations

import os
import re
import stat
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from hmig._subprocess import run
from hmig.binaries import check_node_version, find_node
from hmig.errors import (
    HmigError,
    JsMigrationError,
    MigrationFileError,
    StatementFailed,
    ToolMissing,
)
from hmig.execution import check_rendered
from hmig.model import Kind, MigrationFile, QueryResult
from hmig.node import BRIDGE_DIR, NodeBridge

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "js"
CJS = FIXTURES / "cjs"
ESM = FIXTURES / "esm"
ERRORS = FIXTURES / "errors"


# --- helpers --------------------------------------------------------------------------------


def migration(path: Path) -> MigrationFile:
    shown = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    return MigrationFile(
        name=path.name.rsplit(".", 1)[0],
        path=shown,
        abspath=path,
        kind=Kind.JS,
        checksum="not-used",
    )


def folder(path: Path) -> list[MigrationFile]:
    return [migration(p) for p in sorted(path.iterdir()) if p.suffix in (".js", ".mjs", ".cjs")]


def by_name(files: Sequence[MigrationFile], prefix: str) -> MigrationFile:
    return next(f for f in files if f.name.startswith(prefix))


def open_bridge(timeout_s: float = 30.0) -> NodeBridge:
    if not (BRIDGE_DIR / "node_modules" / "node-pg-migrate" / "package.json").is_file():
        pytest.fail(
            "the Node bridge's packages are missing: run `npm ci --prefix src/hmig/node/bridge`",
            pytrace=False,
        )
    env = dict(os.environ)
    return NodeBridge(node=find_node(env), bridge_dir=BRIDGE_DIR, env=env, timeout_s=timeout_s)


# Type OIDs (pg_type.oid), as the server describes columns.
INT4, INT8, TEXT, BYTEA, DATE, TIMESTAMPTZ = 23, 20, 25, 17, 1082, 1184
NUMERIC, FLOAT8, UUID, JSONB = 1700, 701, 2950, 3802

Answer = Sequence[QueryResult]


def selected(columns: Sequence[tuple[str, int]], *rows: Sequence[str | None]) -> QueryResult:
    """What the server sends for a SELECT: column names and types, every value as text."""
    return QueryResult(
        command=f"SELECT {len(rows)}",
        fields=tuple((name, 0, 0, oid, -1, -1) for name, oid in columns),
        rows=tuple(tuple(row) for row in rows),
    )


class FakeDb:
    """A QueryFn that records calls and answers with canned results or server errors."""

    def __init__(self, answer: Callable[[str, Sequence[object]], Answer] | None = None):
        self.calls: list[tuple[str, list[object]]] = []
        self._answer = answer

    def __call__(self, text: str, values: Sequence[object]) -> Answer:
        self.calls.append((text, list(values)))
        if "missing_table" in text:
            raise StatementFailed(
                'relation "missing_table" does not exist', sqlstate="42P01", position=15
            )
        if self._answer is not None:
            return self._answer(text, values)
        return [QueryResult(command="SELECT 0", fields=(), rows=())]


def no_queries(text: str, values: Sequence[object]) -> Answer:
    raise AssertionError(f"unexpected query {text!r}")


def sql_of(bridge: NodeBridge, file: MigrationFile, direction: str = "up") -> list[str]:
    return [s.sql for s in bridge.render(file, direction=direction, query=no_queries).statements]


@pytest.fixture
def cjs() -> Iterator[tuple[NodeBridge, list[MigrationFile]]]:
    files = folder(CJS)
    with open_bridge() as bridge:
        bridge.start(files)
        yield bridge, files


# --- rendering ------------------------------------------------------------------------------


def test_shorthand_defined_in_an_earlier_file(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    assert sql_of(bridge, by_name(files, "1700000000002")) == [
        'CREATE TABLE "accounts" (\n'
        '  "id" serial PRIMARY KEY,\n'
        '  "tenant_id" integer NOT NULL REFERENCES "tenants",\n'
        '  "created_at" timestamptz NOT NULL\n'
        ");"
    ]


def test_each_file_sees_shorthands_accumulated_up_to_itself(
    cjs: tuple[NodeBridge, list[MigrationFile]],
) -> None:
    # node-pg-migrate's runner gives every Migration a snapshot {...shorthands} taken as it
    # loads that file: a later redefinition does not change earlier files.
    bridge, files = cjs
    assert "timestamptz NOT NULL" in sql_of(bridge, by_name(files, "1700000000002"))[0]
    assert sql_of(bridge, by_name(files, "1700000000010")) == [
        'CREATE TABLE "events" (\n'
        '  "id" serial PRIMARY KEY,\n'
        '  "at" timestamp DEFAULT $pga$epoch$pga$\n'
        ");"
    ]


def test_shorthand_missing_when_defining_file_not_loaded() -> None:
    with open_bridge() as bridge:
        later = migration(CJS / "1700000000002_use-shorthands.js")
        bridge.start([later])
        # Unknown shorthands are passed through as type names, as node-pg-migrate does.
        assert '"tenant_id" tenant_ref' in sql_of(bridge, later)[0]


def test_sql_multi_statement_is_one_step(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    rendered = bridge.render(by_name(files, "1700000000003"), direction="up", query=no_queries)
    assert [s.index for s in rendered.statements] == [0, 1]
    first, second = (s.sql for s in rendered.statements)
    assert "VALUES ('a');" in first and "VALUES ('b');" in first and first.endswith(";")
    assert second == "UPDATE tenants SET name = upper(name);"
    assert rendered.transactional and rendered.reason is None


def test_no_transaction(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    rendered = bridge.render(by_name(files, "1700000000004"), direction="up", query=no_queries)
    assert not rendered.transactional
    assert rendered.reason == "pgm.noTransaction()"
    assert [s.sql for s in rendered.statements] == [
        'CREATE INDEX CONCURRENTLY "accounts_created_at_index" ON "accounts" ("created_at");'
    ]


def test_db_query_round_trip_decides_the_sql(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs

    def answer(text: str, values: Sequence[object]) -> Answer:
        if "count" in text:
            return [selected([("n", INT4)], ["1"])]
        return [selected([("name", TEXT)], ["B"], ["C"])]

    db = FakeDb(answer)
    rendered = bridge.render(by_name(files, "1700000000005"), direction="up", query=db)
    # Values arrive as pg's client sends them: as text.
    assert db.calls == [
        ("SELECT count(*)::int AS n FROM tenants WHERE name = $1", ["A"]),
        ("SELECT name FROM tenants WHERE id > $1 ORDER BY id", ["1"]),
    ]
    assert [s.sql for s in rendered.statements] == ["-- found 1 row(s), fields n, names B,C;"]

    empty = FakeDb(lambda t, v: [selected([("n", INT4)], ["0"])])
    rendered = bridge.render(by_name(files, "1700000000005"), direction="up", query=empty)
    assert [s.sql for s in rendered.statements] == ["-- nothing found;"]


def test_query_error_is_a_rejection_the_migration_can_catch(
    cjs: tuple[NodeBridge, list[MigrationFile]],
) -> None:
    bridge, files = cjs
    db = FakeDb()
    rendered = bridge.render(by_name(files, "1700000000006"), direction="up", query=db)
    assert db.calls == [("SELECT * FROM missing_table", [])]
    assert [s.sql for s in rendered.statements] == [
        '-- caught 42P01: relation "missing_table" does not exist (true);'
    ]
    assert any("Error executing" in log.text for log in bridge.logs)


def test_uncaught_query_error_fails_with_the_server_error_as_cause() -> None:
    file = migration(ERRORS / "query-uncaught.js")
    with open_bridge() as bridge:
        bridge.start([file])
        with pytest.raises(JsMigrationError) as caught:
            bridge.render(file, direction="up", query=FakeDb())
    assert caught.value.reason == 'relation "missing_table" does not exist'
    assert isinstance(caught.value.__cause__, StatementFailed)
    assert caught.value.__cause__.sqlstate == "42P01"


def test_callback_style_up_waits_for_run(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    assert sql_of(bridge, by_name(files, "1700000000007")) == ["SELECT 7;"]


def test_async_up_is_awaited() -> None:
    files = folder(ESM)
    with open_bridge() as bridge:
        bridge.start(files)
        assert sql_of(bridge, files[0]) == [
            'CREATE TABLE "labels" (\n'
            '  "id" serial PRIMARY KEY,\n'
            '  "label" varchar(40) NOT NULL\n'
            ");"
        ]


def test_row_values_are_parsed_by_pg_type_parsers(
    cjs: tuple[NodeBridge, list[MigrationFile]],
) -> None:
    # hmig hands over the server's text and each column's type; pg's own parsers do the rest.
    bridge, files = cjs
    columns_and_values = [
        ("ts", TIMESTAMPTZ, "2024-01-02 03:04:05.123456+00"),
        ("day", DATE, "2024-02-29"),
        ("num", NUMERIC, "1.50"),
        ("big", INT8, "4611686018427387904"),
        ("bytes", BYTEA, "\\x6869"),
        ("json", JSONB, '{"a": [1, 2], "$hmig": "x"}'),
        ("nan", FLOAT8, "NaN"),
        ("uuid", UUID, "00000000-0000-0000-0000-000000000001"),
        ("nil", TEXT, None),
    ]
    columns = [(name, oid) for name, oid, _ in columns_and_values]
    row = [value for _, _, value in columns_and_values]
    db = FakeDb(lambda t, v: [selected(columns, row)])
    rendered = bridge.render(by_name(files, "1700000000011"), direction="up", query=db)
    _, values = db.calls[0]
    # Parameters as pg binds them: prepareValue's text, a Buffer as bytes.
    assert values[0] == b"hi" and values[2] == "42"
    assert isinstance(values[1], str) and values[1].startswith("2024-01-02T")
    assert [s.sql for s in rendered.statements] == [
        "-- ts=true:2024-01-02T03:04:05.123Z day=true:2024-2-29 num=string:1.50"
        " big=string:4611686018427387904 bytes=true:hi json=2:x nan=true"
        " uuid=00000000-0000-0000-0000-000000000001 nil=true;"
    ]


def test_result_is_shaped_as_pg_client_query_resolves(tmp_path: Path) -> None:
    # pg's Query and Result, fed the server's raw answer: command/rowCount/oid from the tag,
    # Field objects, rowMode 'array', one Result per statement, pg's call forms.
    path = tmp_path / "1_shape.js"
    path.write_text(
        "exports.up = async (pgm) => {\n"
        "  const out = [];\n"
        "  const one = await pgm.db.query('SELECT a');\n"
        "  out.push([one.command, one.rowCount, one.oid, one.constructor.name,\n"
        "    one.fields[0].constructor.name, one.fields[0].dataTypeID, one.fields[0].format,\n"
        "    JSON.stringify(one.rows)].map(String).join(' '));\n"
        "  const ins = await pgm.db.query('INSERT b', ['x']);\n"
        "  out.push([ins.command, ins.rowCount, ins.oid, JSON.stringify(ins.fields)].join(' '));\n"
        "  const arr = await pgm.db.query({ text: 'SELECT a', rowMode: 'array' });\n"
        "  out.push(JSON.stringify(arr.rows));\n"
        "  const many = await pgm.db.query('SELECT a; INSERT b');\n"
        "  out.push(`${Array.isArray(many)} ${many.map((r) => r.command).join(',')}`);\n"
        "  out.push(String(await pgm.db.select('SELECT a; INSERT b')));\n"
        "  const empty = await pgm.db.query('');\n"
        "  out.push(`${empty.command} ${empty.rowCount} ${empty.rows.length}`);\n"
        "  await pgm.db.query({ text: 'CONFIG', values: [1] }, [2]);\n"
        "  await pgm.db.query({ text: 'CONFIG', values: [3] });\n"
        "  pgm.sql(out.map((line) => `-- ${line}`).join('\\n'));\n"
        "};\n"
    )

    def answer(text: str, values: Sequence[object]) -> Answer:
        insert = QueryResult(command="INSERT 0 3", fields=None, rows=())
        select = selected([("a", INT4)], ["1"], ["2"])
        return {
            "SELECT a": [select],
            "INSERT b": [insert],
            "SELECT a; INSERT b": [select, insert],
            "": [QueryResult(command=None, fields=None, rows=())],
        }.get(text, [insert])

    db = FakeDb(answer)
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        rendered = bridge.render(file, direction="up", query=db)
    assert rendered.statements[0].sql.splitlines() == [
        '-- SELECT 2 null Result Field 23 text [{"a":1},{"a":2}]',
        "-- INSERT 3 0 []",
        "-- [[1],[2]]",
        "-- true SELECT,INSERT",
        "-- undefined",
        "-- null null 0;",
    ]
    # No values: pg's simple protocol, sent with none. Values given as the second argument
    # replace a config object's own, as pg's normalizeQueryConfig does.
    assert [values for _, values in db.calls] == [[], ["x"], [], [], [], [], ["2"], ["3"]]


def test_query_call_errors_are_pg_s(tmp_path: Path) -> None:
    path = tmp_path / "1_bad_calls.js"
    path.write_text(
        "exports.up = async (pgm) => {\n"
        "  const out = [];\n"
        "  for (const call of [\n"
        "    () => pgm.db.query(null),\n"
        "    () => pgm.db.query({ values: [] }),\n"
        "    () => pgm.db.query('SELECT $1', 'not an array'),\n"
        "    () => pgm.db.query('SELECT missing_table'),\n"
        "  ]) {\n"
        "    try { await call(); out.push('resolved'); }\n"
        "    catch (e) { out.push(`${e.constructor.name}: ${e.message} ${e.code ?? ''}`); }\n"
        "  }\n"
        "  pgm.sql(out.map((line) => `-- ${line}`).join('\\n'));\n"
        "};\n"
    )
    db = FakeDb()
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        rendered = bridge.render(file, direction="up", query=db)
    # node-pg-migrate's db.query reads `.text` of a null query while reporting pg's TypeError.
    assert [line.rstrip() for line in rendered.statements[0].sql.splitlines()] == [
        "-- TypeError: Cannot read properties of null (reading 'text')",
        "-- Error: A query must have either text or a name. Supplying neither is unsupported.",
        "-- Error: Query values must be an array",
        '-- DatabaseError: relation "missing_table" does not exist 42P01;',
    ]
    assert db.calls == [("SELECT missing_table", [])]


def test_console_output_does_not_disturb_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "1_logs.js"
    path.write_text(
        "console.log('loading');\n"
        "exports.up = (pgm) => {\n"
        '  console.log(\'{"type":"rendered","id":1}\');\n'
        "  process.stdout.write('raw write\\n');\n"
        "  console.warn('careful', 42);\n"
        "  pgm.sql('SELECT 1');\n"
        "};\n"
    )
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        assert sql_of(bridge, file) == ["SELECT 1;"]
        texts = [(log.level, log.text, log.migration) for log in bridge.logs]
    assert ("info", "loading", "1_logs") in texts
    assert ("warn", "careful 42", "1_logs") in texts


# --- down -----------------------------------------------------------------------------------


def test_down_is_inferred_for_create_table(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    assert sql_of(bridge, by_name(files, "1700000000002"), "down") == ['DROP TABLE "accounts";']
    assert sql_of(bridge, by_name(files, "1700000000004"), "down") == [
        'DROP INDEX CONCURRENTLY "accounts_created_at_index";'
    ]


def test_explicit_down(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    assert sql_of(bridge, by_name(files, "1700000000008"), "down") == [
        "ALTER TABLE accounts DROP COLUMN nickname;"
    ]


def test_down_false_is_refused(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    file = by_name(files, "1700000000005")
    with pytest.raises(JsMigrationError) as caught:
        bridge.render(file, direction="down", query=no_queries)
    assert caught.value.reason == (
        "User has disabled down migration on file: 1700000000005_db-query"
    )
    assert caught.value.file == "tests/fixtures/js/cjs/1700000000005_db-query.js"


def test_impossible_inference(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    file = by_name(files, "1700000000009")
    with pytest.raises(JsMigrationError) as caught:
        bridge.render(file, direction="down", query=no_queries)
    assert caught.value.reason == 'Impossible to automatically infer down migration for "pgm.()"'
    assert caught.value.line == 3
    # The bridge stays usable after a migration's own error.
    assert sql_of(bridge, by_name(files, "1700000000007")) == ["SELECT 7;"]


def test_pgm_db_cannot_be_reversed(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    with pytest.raises(JsMigrationError) as caught:
        bridge.render(by_name(files, "1700000000011"), direction="down", query=no_queries)
    assert caught.value.reason == "Impossible to automatically infer down migration"


# --- what a module exports: node-pg-migrate's Migration._getAction, checked up front -------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty: it exports no `up` function"),
        (
            "exports.down = (pgm) => pgm.sql('SELECT 1');\n",
            'it exports no `up` function: node-pg-migrate would fail with "Unknown value for '
            "direction: up. Is the migration 1_m exporting a 'up' function?\"",
        ),
        (
            "exports.up = false;\n",
            "it exports `up = false`: node-pg-migrate refuses to run it "
            '("User has disabled up migration on file: 1_m")',
        ),
        (
            "module.exports = { up: 'CREATE TABLE t ()' };\n",
            "its `up` export is a string, not a function",
        ),
    ],
    ids=["empty", "down-only", "up-false", "up-string"],
)
def test_a_module_without_an_up_function_is_refused_as_node_pg_migrate_would(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "1_m.js"
    path.write_text(text)
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        with pytest.raises(JsMigrationError) as caught:
            bridge.require_action(file, direction="up")
        assert caught.value.reason == reason
        assert "exports.up = (pgm) =>" in caught.value.hint
        assert "export const up" in caught.value.hint
        # The check predicts node-pg-migrate's own refusal when the migration would run.
        with pytest.raises(
            JsMigrationError,
            match=r"^1_m\.js: (Unknown value for direction: up|User has disabled up migration)",
        ):
            bridge.render(file, direction="up", query=no_queries)


def test_esm_module_with_only_down_is_refused_and_its_down_still_runs(tmp_path: Path) -> None:
    # node-pg-migrate imports a file without `up` and can still revert it: only up is refused.
    path = tmp_path / "2_only-down.mjs"
    path.write_text("export const down = (pgm) => { pgm.dropTable('t'); };\n")
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        with pytest.raises(JsMigrationError, match="exports no `up` function"):
            bridge.require_action(file, direction="up")
        bridge.require_action(file, direction="down")
        assert sql_of(bridge, file, "down") == ['DROP TABLE "t";']


def test_down_is_checked_as_node_pg_migrate_infers_it(
    cjs: tuple[NodeBridge, list[MigrationFile]],
) -> None:
    bridge, files = cjs
    inferred = by_name(files, "1700000000002")  # no down: up runs in reverse
    bridge.require_action(inferred, direction="down")
    with pytest.raises(JsMigrationError) as caught:
        bridge.require_action(by_name(files, "1700000000005"), direction="down")
    assert caught.value.reason.startswith("it exports `down = false`")
    with pytest.raises(JsMigrationError, match="not loaded"):
        bridge.require_action(migration(ERRORS / "throws.js"), direction="up")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COMMIT", r"up\(\) renders `COMMIT;` \(SQL step 2 of 3\): COMMIT inside a migration"),
        ("BEGIN", r"`BEGIN;` \(SQL step 2 of 3\): BEGIN inside a migration"),
        ("CREATE TABLE (", r'`CREATE TABLE \(;` \(SQL step 2 of 3\): syntax error at or near "\("'),
        ("COPY t FROM stdin", r"`COPY t FROM stdin;` \(SQL step 2 of 3\): COPY … FROM stdin"),
        ("\\\\i other.sql", r"`\\i other.sql;` \(SQL step 2 of 3\): \\i is a psql meta-command"),
        ("SELECT 1;\\nROLLBACK", r"`ROLLBACK;` \(SQL step 2 of 3, line 2\): ROLLBACK inside"),
    ],
    ids=["commit", "begin", "syntax-error", "copy-stdin", "meta-command", "second-line"],
)
def test_rendered_sql_is_checked_as_a_sql_file_is(tmp_path: Path, sql: str, message: str) -> None:
    path = tmp_path / "3_renders.js"
    path.write_text(
        "exports.up = (pgm) => {\n  pgm.createTable('t', { id: 'id' });\n"
        f"  pgm.sql('{sql}');\n  pgm.sql('SELECT 2');\n}};\n"
    )
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        rendered = bridge.render(file, direction="up", query=no_queries)
    with pytest.raises(MigrationFileError) as caught:
        check_rendered(file, rendered)
    assert caught.value.file == file.path
    assert re.search(message, caught.value.message), caught.value.message
    assert caught.value.hint.startswith("Nothing was run.")


def test_rendered_sql_that_a_sql_file_may_hold_passes(
    cjs: tuple[NodeBridge, list[MigrationFile]],
) -> None:
    bridge, files = cjs
    for name in ("1700000000003", "1700000000004", "1700000000008"):
        file = by_name(files, name)
        check_rendered(file, bridge.render(file, direction="up", query=FakeDb()))
    check_rendered(
        by_name(files, "1700000000008"),
        bridge.render(by_name(files, "1700000000008"), direction="down", query=no_queries),
        direction="down",
    )


# --- module formats -------------------------------------------------------------------------


def test_esm_mjs_and_cjs_in_a_module_folder() -> None:
    files = folder(ESM)
    assert [f.abspath.suffix for f in files] == [".js", ".mjs", ".cjs"]
    with open_bridge() as bridge:
        bridge.start(files)
        assert sql_of(bridge, files[1]) == [
            'ALTER TABLE "labels"\n  ADD "note" varchar(40) NOT NULL;',
            "-- from 1700000000002_module.mjs;",
        ]
        assert sql_of(bridge, files[2], "down") == [
            'ALTER TABLE "labels" RENAME "remark" TO "note";'
        ]


def test_typescript_ts_mts_cts_load_through_jiti(tmp_path: Path) -> None:
    # node-pg-migrate 9 imports .ts, .mts and .cts with jiti, as it imports .js.
    files = {
        "1_types.ts": """
            import type { ColumnDefinitions, MigrationBuilder } from 'node-pg-migrate';

            interface Named { name: string }
            enum Kind { A = 'a', B = 'b' }
            const table: Named = { name: 'from_ts' };

            export const shorthands: ColumnDefinitions = { ref: { type: 'bigint', notNull: true } };

            export async function up(pgm: MigrationBuilder): Promise<void> {
              const rows = await pgm.db.select<{ n: number }>('SELECT 1 AS n');
              const kind = { type: 'text', default: Kind.B };
              pgm.createTable(table.name, { id: 'id', r: 'ref', kind });
              pgm.sql(`-- ${rows[0].n as number}`);
            }

            export const down = (pgm: MigrationBuilder): void => {
              pgm.sql('-- down'), (undefined as unknown as { fail(): void }).fail();
            };
            """,
        "2_module.mts": """
            import type { MigrationBuilder } from 'node-pg-migrate';
            export const up = (pgm: MigrationBuilder): void => {
              pgm.createTable('m', { r: 'ref' });
            };
            """,
        "3_common.cts": """
            import type { MigrationBuilder } from 'node-pg-migrate';
            exports.up = (pgm: MigrationBuilder): void => { pgm.sql('SELECT 3'); };
            """,
    }
    migrations = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        migrations.append(migration(path))
    ts, mts, cts = migrations
    db = FakeDb(lambda t, v: [selected([("n", INT4)], ["1"])])
    with open_bridge() as bridge:
        bridge.start(migrations)
        assert [s.sql for s in bridge.render(ts, direction="up", query=db).statements] == [
            'CREATE TABLE "from_ts" (\n'
            '  "id" serial PRIMARY KEY,\n'
            '  "r" bigint NOT NULL,\n'
            '  "kind" text DEFAULT $pga$b$pga$\n'
            ");",
            "-- 1;",
        ]
        assert sql_of(bridge, mts) == ['CREATE TABLE "m" (\n  "r" bigint NOT NULL\n);']
        assert sql_of(bridge, mts, "down") == ['DROP TABLE "m";']
        assert sql_of(bridge, cts) == ["SELECT 3;"]
        # Errors point into the TypeScript source, not into jiti's transpiled output.
        with pytest.raises(JsMigrationError) as caught:
            sql_of(bridge, ts, "down")
    assert caught.value.line == 17  # the line of `.fail()` in 1_types.ts
    assert caught.value.file == "1_types.ts"


def test_esm_syntax_in_a_commonjs_folder(cjs: tuple[NodeBridge, list[MigrationFile]]) -> None:
    bridge, files = cjs
    assert sql_of(bridge, by_name(files, "1700000000012")) == ['DROP TABLE "events";']


# --- failures -------------------------------------------------------------------------------


def test_syntax_error_names_file_and_line() -> None:
    file = migration(ERRORS / "syntax-error.js")
    with open_bridge() as bridge, pytest.raises(JsMigrationError) as caught:
        bridge.start([file])
    assert caught.value.file == "tests/fixtures/js/errors/syntax-error.js"
    assert caught.value.line == 4
    assert "Unexpected token" in caught.value.reason
    assert str(caught.value).startswith("tests/fixtures/js/errors/syntax-error.js:4: ")


def test_failed_import_names_file_and_line() -> None:
    file = migration(ERRORS / "import-fails.mjs")
    with open_bridge() as bridge, pytest.raises(JsMigrationError) as caught:
        bridge.start([file])
    assert caught.value.line == 1
    assert caught.value.reason == "Cannot find module './does-not-exist.mjs'"


@pytest.mark.parametrize(
    ("name", "line", "reason"),
    [
        ("throws.js", 4, "unexpected value bad"),
        ("throws-esm.js", 10, "TypeError: thrown after an await"),
        ("rejects-later.js", 4, "rejected inside a callback-style up"),
    ],
)
def test_thrown_error_names_file_and_line(name: str, line: int, reason: str) -> None:
    file = migration(ERRORS / name)
    other = migration(CJS / "1700000000007_callback.js")
    with open_bridge() as bridge:
        bridge.start([file, other])
        with pytest.raises(JsMigrationError) as caught:
            bridge.render(file, direction="up", query=no_queries)
        assert (caught.value.line, caught.value.reason) == (line, reason)
        assert caught.value.file == f"tests/fixtures/js/errors/{name}"
        assert not bridge.stopped  # a thrown error is the migration's, not Node's
        assert sql_of(bridge, other) == ["SELECT 7;"]


def test_promise_that_never_settles_times_out() -> None:
    file = migration(ERRORS / "never-settles.js")
    other = migration(CJS / "1700000000007_callback.js")
    with open_bridge(timeout_s=1.0) as bridge:
        bridge.start([file, other])
        began = time.monotonic()
        with pytest.raises(JsMigrationError) as caught:
            bridge.render(file, direction="up", query=no_queries)
        assert time.monotonic() - began < 10
        assert "did not settle within 1 s" in caught.value.reason
        assert "run()" in caught.value.hint
        assert bridge.stopped
        with pytest.raises(JsMigrationError, match="cannot be used any more"):
            bridge.render(other, direction="up", query=no_queries)


def test_node_crash_reports_exit_code_and_stderr() -> None:
    file = migration(ERRORS / "crash.js")
    with open_bridge() as bridge:
        bridge.start([file])
        with pytest.raises(JsMigrationError) as caught:
            bridge.render(file, direction="up", query=no_queries)
        assert bridge.stopped  # it died: no .js migration can render after it
    assert "node exited with code 3 while running up()" in caught.value.reason
    assert "about to crash" in caught.value.reason


def test_render_of_a_file_not_given_to_start() -> None:
    with open_bridge() as bridge:
        bridge.start([])
        with pytest.raises(JsMigrationError, match="not loaded"):
            bridge.render(
                migration(CJS / "1700000000007_callback.js"), direction="up", query=no_queries
            )


def test_fifty_migrations_in_one_process(tmp_path: Path) -> None:
    files = []
    for i in range(50):
        path = tmp_path / f"{1700000000000 + i}_step-{i}.js"
        path.write_text(
            f"exports.up = (pgm) => {{\n"
            f"  pgm.createTable('t{i}', {{ id: 'id', name: {{ type: 'text', notNull: true }} }});\n"
            f"  pgm.addIndex('t{i}', 'name');\n"
            f"}};\n"
        )
        files.append(migration(path))
    began = time.monotonic()
    with open_bridge() as bridge:
        bridge.start(files)
        started = time.monotonic()
        rendered = [bridge.render(f, direction="up", query=no_queries) for f in files]
    ended = time.monotonic()
    assert all(len(r.statements) == 2 for r in rendered)
    print(f"start {started - began:.3f} s, 50 renders {ended - started:.3f} s")
    assert ended - began < 20


# --- tools ----------------------------------------------------------------------------------


def test_node_missing_is_tool_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-node")
    with pytest.raises(ToolMissing, match="does not exist") as caught:
        find_node({"HMIG_NODE": missing, "PATH": os.environ.get("PATH", "")})
    assert "Install Node.js 20.11 or newer" in caught.value.hint  # NODE_MINIMUM
    with pytest.raises(ToolMissing, match="not found on PATH"):
        find_node({"PATH": str(tmp_path)})
    bridge = NodeBridge(node=Path(missing), bridge_dir=BRIDGE_DIR, env={}, timeout_s=5)
    with bridge, pytest.raises(ToolMissing, match="not found"):
        bridge.start([])


def test_node_too_old_is_tool_missing(tmp_path: Path) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v18.19.0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert find_node({"HMIG_NODE": str(fake)}) == fake
    with pytest.raises(
        ToolMissing, match=r"Node\.js 18\.19\.0; node-pg-migrate 9 needs Node\.js 20\.11"
    ):
        check_node_version(fake)
    version = check_node_version(find_node(dict(os.environ)))
    assert tuple(int(part) for part in version.split(".")[:2]) >= (20, 11)


def test_missing_packages_tell_how_to_install(tmp_path: Path) -> None:
    (tmp_path / "bridge.mjs").write_text("")
    bridge = NodeBridge(node=Path("node"), bridge_dir=tmp_path, env={}, timeout_s=5)
    with pytest.raises(ToolMissing) as caught:
        bridge.start([])
    assert caught.value.hint == f"Run `npm ci --prefix {tmp_path}`."


def test_run_reports_missing_program_and_timeout() -> None:
    with pytest.raises(ToolMissing, match="was not found"):
        run(["/nonexistent/program"], timeout=5)
    with pytest.raises(HmigError, match=r"did not finish within 0\.5 s"):
        run(["sleep", "5"], timeout=0.5)
    done = run(["sh", "-c", "cat; echo err >&2; exit 4"], input=b"in", timeout=5, env={})
    assert (done.returncode, done.stdout, done.stderr) == (4, "in", "err\n")


def test_down_that_is_up_reverses_both_directions(tmp_path: Path) -> None:
    # node-pg-migrate's Migration.apply enables reverse mode whenever down === up, so a file
    # that exports the same function for both renders its reverse even for `up`.
    path = tmp_path / "1_same.js"
    path.write_text(
        "const change = (pgm) => { pgm.createTable('x', { id: 'id' }); };\n"
        "exports.up = change;\n"
        "exports.down = change;\n"
    )
    file = migration(path)
    with open_bridge() as bridge:
        bridge.start([file])
        assert sql_of(bridge, file, "up") == ['DROP TABLE "x";']
        assert sql_of(bridge, file, "down") == ['DROP TABLE "x";']


def test_query_callback_failure_other_than_sql_stops_the_bridge() -> None:
    file = migration(CJS / "1700000000005_db-query.js")
    other = migration(CJS / "1700000000007_callback.js")

    def interrupted(text: str, values: Sequence[object]) -> Answer:
        raise KeyboardInterrupt

    with open_bridge() as bridge:
        bridge.start([file, other])
        with pytest.raises(KeyboardInterrupt):
            bridge.render(file, direction="up", query=interrupted)
        with pytest.raises(JsMigrationError, match="cannot be used any more"):
            bridge.render(other, direction="up", query=no_queries)
