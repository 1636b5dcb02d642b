"""The migrations folder → `MigrationFile` values (tmp_path is the filesystem adapter)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hmig import discovery
from hmig.errors import ManifestError, MigrationFileError
from hmig.model import Kind, MigrationFile, MigrationsConfig, Problem


def config(folder: Path) -> MigrationsConfig:
    return MigrationsConfig(dir=folder, table="pgmigrations", schema="public", order=None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    return path


def write(folder: Path, name: str, content: str | bytes = "SELECT 1;\n") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def discover(folder: Path) -> dict[str, MigrationFile]:
    found = discovery.discover(config(folder), base_dir=folder.parent)
    return {m.name: m for m in found}


def discover_error(folder: Path) -> MigrationFileError:
    with pytest.raises(MigrationFileError) as caught:
        discovery.discover(config(folder), base_dir=folder.parent)
    return caught.value


# --- what counts as a migration ---------------------------------------------------------------


def test_discover__non_migration_entries__are_ignored(folder: Path) -> None:
    write(folder, "README.md", "# Migrations\n")
    write(folder, "schemas/README.md", "# nested\n")
    write(folder, "schemas/001_nested.sql")
    write(folder, ".hidden.sql")
    write(folder, ".eslintrc.js", "module.exports = {};\n")
    write(folder, "notes.txt", "not SQL\n")
    write(folder, "002_b.sql.bak", "SELECT 1;\n")
    write(folder, "001_a.sql")

    assert list(discover(folder)) == ["001_a"]


@pytest.mark.parametrize(
    ("file_name", "name", "kind"),
    [
        ("001_a.sql", "001_a", Kind.SQL),
        ("001_a.SQL", "001_a", Kind.SQL),
        ("002_b.js", "002_b", Kind.JS),
        ("002_b.JS", "002_b", Kind.JS),
        ("003_c.cjs", "003_c", Kind.JS),
        ("004_d.mjs", "004_d", Kind.JS),
        ("005_e.Mjs", "005_e", Kind.JS),
        ("add-subdomain-to-tenants.sql", "add-subdomain-to-tenants", Kind.SQL),
        ("20240101.v2.schema.sql", "20240101.v2.schema", Kind.SQL),
        ("006_f.config.js", "006_f.config", Kind.JS),
        ("007_g.ts", "007_g", Kind.JS),
        ("008_h.mts", "008_h", Kind.JS),
        ("009_i.cts", "009_i", Kind.JS),
    ],
)
def test_discover__accepted_extension__names_the_file_without_its_last_extension(
    folder: Path, file_name: str, name: str, kind: Kind
) -> None:
    write(folder, file_name, "SELECT 1;\n" if kind is Kind.SQL else "exports.up = () => {};\n")

    found = discover(folder)

    assert list(found) == [name]
    migration = found[name]
    assert migration.kind is kind
    assert migration.path == f"migrations/{file_name}"
    assert migration.abspath == folder / file_name
    assert migration.down_path is None
    assert migration.problem is None


def test_discover__js_file__has_no_statements(folder: Path) -> None:
    write(folder, "001_a.js", "exports.up = (pgm) => { pgm.sql('SELECT 1'); };\n")

    migration = discover(folder)["001_a"]

    assert migration.statements == ()
    assert migration.no_transaction_directive is False


def test_discover__sql_file__is_split_into_located_statements(folder: Path) -> None:
    write(
        folder,
        "001_a.sql",
        "-- Up Migration\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n"
        "-- Down Migration\nDROP TABLE a;\n",
    )

    migration = discover(folder)["001_a"]

    assert [(s.index, s.sql, s.line, s.column) for s in migration.statements] == [
        (0, "CREATE TABLE a (id int)", 2, 1),
        (1, "INSERT INTO a VALUES (1)", 3, 1),
    ]


def test_discover__utf8_bom__is_not_part_of_the_text(folder: Path) -> None:
    write(folder, "001_a.sql", b"\xef\xbb\xbfSELECT 1;\n")
    write(folder, "002_b.sql", b"SELECT 1;\n")

    found = discover(folder)

    assert found["001_a"].checksum == found["002_b"].checksum
    assert (found["001_a"].statements[0].line, found["001_a"].statements[0].column) == (1, 1)


# --- .up.sql / .down.sql pairs ----------------------------------------------------------------


def test_discover__up_and_down_pair__is_one_migration_with_down_path(folder: Path) -> None:
    write(folder, "001_x.up.sql", "CREATE TABLE x ();\n")
    write(folder, "001_x.down.sql", "DROP TABLE x;\n")
    write(folder, "002_y.up.sql", "CREATE TABLE y ();\n")

    found = discover(folder)

    assert list(found) == ["001_x", "002_y"]
    assert found["001_x"].path == "migrations/001_x.up.sql"
    assert found["001_x"].down_path == "migrations/001_x.down.sql"
    assert [s.sql for s in found["001_x"].statements] == ["CREATE TABLE x ()"]
    assert found["002_y"].down_path is None


def test_discover__up_file__is_up_as_a_whole_even_with_markers(folder: Path) -> None:
    write(folder, "001_x.up.sql", "CREATE TABLE x ();\n-- Down Migration\nCREATE TABLE y ();\n")

    migration = discover(folder)["001_x"]

    assert [(s.sql, s.line) for s in migration.statements] == [
        ("CREATE TABLE x ()", 1),
        ("CREATE TABLE y ()", 3),
    ]


def test_discover__up_and_down_with_upper_case_suffixes__pair_up(folder: Path) -> None:
    write(folder, "001_x.UP.SQL")
    write(folder, "001_x.Down.sql", "SELECT 2;\n")

    found = discover(folder)

    assert list(found) == ["001_x"]
    assert found["001_x"].down_path == "migrations/001_x.Down.sql"


def test_discover__down_without_up__raises_node_pg_migrate_text(folder: Path) -> None:
    write(folder, "001_x.down.sql", "DROP TABLE x;\n")

    error = discover_error(folder)

    assert error.file == "migrations/001_x.down.sql"
    assert error.message == (
        "migrations/001_x.down.sql: Found .down.sql without matching .up.sql for 001_x"
    )
    assert "Add 001_x.up.sql" in error.hint


def test_discover__plain_sql_beside_up_sql__raises_conflict(folder: Path) -> None:
    write(folder, "001_x.sql")
    write(folder, "001_x.up.sql")

    error = discover_error(folder)

    assert "Conflicting SQL migration files for 001_x: cannot mix .sql with .up/.down" in (
        error.message
    )
    assert "migrations/001_x.sql" in error.message
    assert "migrations/001_x.up.sql" in error.message


def test_discover__same_name_in_sql_and_js__raises_naming_both_files(folder: Path) -> None:
    write(folder, "x.sql")
    write(folder, "x.js", "exports.up = () => {};\n")

    error = discover_error(folder)

    assert "two migrations are named 'x'" in error.message
    assert "migrations/x.js" in error.message
    assert "migrations/x.sql" in error.message
    assert "rename one" in error.hint


def test_discover__two_up_files_for_one_name__raises_duplicate(folder: Path) -> None:
    write(folder, "001_x.up.sql", "CREATE TABLE a ();\n")
    write(folder, "001_x.UP.sql", "CREATE TABLE b ();\n")

    error = discover_error(folder)

    assert "Duplicate .up.sql for 001_x" in error.message
    assert "migrations/001_x.up.sql" in error.message
    assert "migrations/001_x.UP.sql" in error.message


# --- checksums --------------------------------------------------------------------------------


def test_checksum__is_sha256_of_the_normalised_text() -> None:
    expected = hashlib.sha256(b"SELECT 1;\nSELECT 2;").hexdigest()

    assert discovery.checksum("SELECT 1;\r\nSELECT 2;\r\n\r\n") == f"sha256:{expected}"


@pytest.mark.parametrize(
    "variant",
    [
        b"CREATE TABLE a ();\nSELECT 1;\n",
        b"CREATE TABLE a ();\r\nSELECT 1;\r\n",
        b"CREATE TABLE a ();\rSELECT 1;\r",
        b"CREATE TABLE a ();\nSELECT 1;",
        b"CREATE TABLE a ();\nSELECT 1;\n\n\n",
        b"CREATE TABLE a ();\nSELECT 1;  \n\t\n",
    ],
    ids=["lf", "crlf", "cr", "no-final-newline", "extra-newlines", "trailing-blanks"],
)
def test_discover__line_endings_and_trailing_newlines__do_not_change_the_checksum(
    folder: Path, variant: bytes
) -> None:
    write(folder, "001_a.sql", b"CREATE TABLE a ();\nSELECT 1;\n")
    write(folder, "002_a.sql", variant)

    found = discover(folder)

    assert found["002_a"].checksum == found["001_a"].checksum


@pytest.mark.parametrize(
    "edit",
    [
        b"CREATE TABLE a ();\nSELECT 2;\n",
        b"CREATE TABLE a ();\n SELECT 1;\n",
        b"CREATE TABLE a ();\n\nSELECT 1;\n",
        b"CREATE TABLE a ();\nSELECT 1; -- why\n",
    ],
    ids=["value", "leading-space", "inner-blank-line", "comment"],
)
def test_discover__real_edit__changes_the_checksum(folder: Path, edit: bytes) -> None:
    write(folder, "001_a.sql", b"CREATE TABLE a ();\nSELECT 1;\n")
    write(folder, "002_a.sql", edit)

    found = discover(folder)

    assert found["002_a"].checksum != found["001_a"].checksum
    assert found["002_a"].checksum.startswith("sha256:")


def test_discover__js_checksum__also_ignores_line_endings(folder: Path) -> None:
    write(folder, "001_a.js", b"exports.up = () => {};\n")
    write(folder, "002_a.js", b"exports.up = () => {};\r\n")

    found = discover(folder)

    assert found["001_a"].checksum == found["002_a"].checksum


# --- problems and directives ------------------------------------------------------------------


def test_discover__syntax_error__is_stored_as_problem_not_raised(folder: Path) -> None:
    write(folder, "001_a.sql", "CREATE TABLE a ();\n\n  SELEC 1;\n")
    write(folder, "002_b.sql")

    found = discover(folder)

    assert found["001_a"].problem == Problem('syntax error at or near "SELEC"', 3, 3)
    assert found["001_a"].statements == ()
    assert found["002_b"].problem is None


def test_discover__transaction_control__is_stored_as_problem_with_line(folder: Path) -> None:
    write(folder, "001_a.sql", "CREATE TABLE a ();\nCOMMIT;\n")

    problem = discover(folder)["001_a"].problem

    assert problem is not None
    assert problem.message.startswith("COMMIT inside a migration")
    assert (problem.line, problem.column) == (2, 1)


@pytest.mark.parametrize(
    ("text", "directive"),
    [
        ("-- hmig:no-transaction\nCREATE INDEX i ON t (a);\n", True),
        ("CREATE INDEX i ON t (a);\n  --   hmig:no-transaction  \n", True),
        ("-- Up Migration\n-- hmig:no-transaction\nSELECT 1;\n-- Down Migration\n", True),
        ("-- Up Migration\nSELECT 1;\n-- Down Migration\n-- hmig:no-transaction\n", False),
        ("SELECT 1; -- hmig:no-transaction\n", False),
        ("-- hmig:no-transaction please\nSELECT 1;\n", False),
        ("SELECT 1;\n", False),
    ],
    ids=[
        "first-line",
        "spaced",
        "in-up-section",
        "only-in-down-section",
        "after-sql",
        "trailing-words",
        "absent",
    ],
)
def test_discover__no_transaction_directive__is_detected_on_its_own_line_in_up(
    folder: Path, text: str, directive: bool
) -> None:
    write(folder, "001_a.sql", text)

    migration = discover(folder)["001_a"]

    assert migration.no_transaction_directive is directive
    assert (migration.no_transaction_reason == "declared with -- hmig:no-transaction") is directive


def test_discover__concurrent_index__gives_the_migration_a_no_transaction_reason(
    folder: Path,
) -> None:
    write(folder, "001_a.sql", "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n")

    migration = discover(folder)["001_a"]

    assert migration.no_transaction_directive is False
    assert migration.no_transaction_reason == "CREATE INDEX CONCURRENTLY (line 2)"


# --- errors -----------------------------------------------------------------------------------


def _manifest_with_dir(root: Path, folder: str) -> Path:
    path = root / "deploy.yml"
    path.write_text(
        f"version: 1\nmigrations:\n  dir: {folder}\nenvironments:\n  test: {{}}\n",
        encoding="utf-8",
    )
    return path


def test_load_manifest__missing_folder__names_the_manifest_its_line_and_key(
    tmp_path: Path,
) -> None:
    with pytest.raises(ManifestError) as caught:
        discovery.load_manifest(_manifest_with_dir(tmp_path, "db/migrations"))

    assert (caught.value.file, caught.value.line) == ("deploy.yml", 3)
    assert caught.value.message == (
        "deploy.yml:3: migrations.dir: migrations folder db/migrations does not exist"
    )
    assert "relative to the manifest" in caught.value.hint


def test_load_manifest__folder_is_a_file__raises_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "migrations").write_text("not a folder\n", encoding="utf-8")

    with pytest.raises(ManifestError) as caught:
        discovery.load_manifest(_manifest_with_dir(tmp_path, "migrations"))

    assert caught.value.message == (
        "deploy.yml:3: migrations.dir: migrations folder migrations is a file, not a folder"
    )


def test_discover__non_utf8_file__raises_naming_the_file_and_byte(folder: Path) -> None:
    write(folder, "001_a.sql")
    write(folder, "002_latin1.sql", "SELECT 'café';\n".encode("latin-1"))

    error = discover_error(folder)

    assert error.file == "migrations/002_latin1.sql"
    assert error.message == "migrations/002_latin1.sql: not UTF-8 text (byte 11)"
    assert "UTF-8" in error.hint


@pytest.mark.parametrize(
    "content",
    [b"", b"\n  \n\t\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"],
    ids=["empty", "blank", "bom-only", "bom-and-crlf"],
)
def test_discover__empty_file__has_a_problem_without_a_line(folder: Path, content: bytes) -> None:
    write(folder, "001_a.sql", content)

    migration = discover(folder)["001_a"]

    assert migration.problem == Problem(discovery.EMPTY)
    assert migration.problem.message.startswith("the file is empty: it would be recorded")
    assert migration.statements == ()


def test_discover__comments_only__is_a_valid_no_op(folder: Path) -> None:
    write(folder, "001_a.sql", "-- Up Migration\n-- INC-42: fixed by hand\n-- Down Migration\n")

    migration = discover(folder)["001_a"]

    assert (migration.problem, migration.down_problem) == (None, None)
    assert (migration.statements, migration.down_statements) == ((), ())


def test_discover__empty_down_file__is_a_down_problem(folder: Path) -> None:
    write(folder, "001_a.up.sql", "CREATE TABLE a ();\n")
    write(folder, "001_a.down.sql", "\n")

    migration = discover(folder)["001_a"]

    assert migration.problem is None
    assert migration.down_problem == Problem(discovery.EMPTY)


def test_discover__nul_byte__is_a_located_problem_and_nothing_is_split(folder: Path) -> None:
    write(folder, "001_a.sql", "CREATE TABLE a ();\n\x00\nCREATE TABLE b ();\n")

    migration = discover(folder)["001_a"]

    assert migration.problem is not None
    assert migration.problem.message.startswith("a NUL byte (\\x00): this is binary content")
    assert (migration.problem.line, migration.problem.column) == (2, 1)
    assert migration.statements == ()


def test_discover__nul_byte_in_the_down_section__refuses_up_and_down(folder: Path) -> None:
    write(folder, "001_a.sql", "CREATE TABLE a ();\n-- Down Migration\nDROP TABLE a;\x00\n")

    migration = discover(folder)["001_a"]

    assert migration.problem is not None
    assert migration.problem == migration.down_problem
    assert (migration.problem.line, migration.problem.column) == (3, 14)


def test_discover__broken_down_section__is_a_down_problem_with_its_line(folder: Path) -> None:
    write(folder, "001_a.sql", "-- Up Migration\nCREATE TABLE a ();\n-- Down Migration\nCOMMIT;\n")
    write(folder, "002_b.up.sql", "CREATE TABLE b ();\n")
    write(folder, "002_b.down.sql", "DROPP TABLE b;\n")

    found = discover(folder)

    assert found["001_a"].problem is None
    assert found["001_a"].down_problem is not None
    assert found["001_a"].down_problem.message.startswith("COMMIT inside a migration")
    assert (found["001_a"].down_problem.line, found["001_a"].down_problem.column) == (4, 1)
    assert found["002_b"].down_problem == Problem('syntax error at or near "DROPP"', 1, 1)


# --- names and links --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("002_new\nline.sql", "migrations/002_new\\nline.sql"),
        ("002_red\x1b[31m.sql", "migrations/002_red\\x1b[31m.sql"),
        ("002_\u202egnp.js", "migrations/002_\\u202egnp.js"),
    ],
    ids=["newline", "terminal-escape", "bidi-override"],
)
def test_discover__control_character_in_a_name__raises_with_the_name_escaped(
    folder: Path, name: str, shown: str
) -> None:
    write(folder, "001_a.sql")
    write(folder, name)

    error = discover_error(folder)

    assert error.file == shown
    assert error.message.startswith(f"{shown}: the file name contains a control character")
    assert "\n" not in error.message and "\x1b" not in error.message


@pytest.mark.parametrize(
    ("names", "first", "second"),
    [
        (("002_a.sql", "002_A.sql"), "002_A", "002_a"),
        (("002_Add.up.sql", "002_add.js"), "002_Add", "002_add"),
    ],
    ids=["sql", "up-sql-and-js"],
)
def test_discover__names_differing_only_in_case__raise_naming_both(
    folder: Path, names: tuple[str, ...], first: str, second: str
) -> None:
    for name in names:
        write(folder, name)

    error = discover_error(folder)

    assert error.file.startswith(f"migrations/{first}.")
    assert f"the migrations {first!r} and {second!r} differ only in letter case" in error.message
    assert "Rename one" in error.hint


def test_discover__names_differing_only_in_normalisation__raise(folder: Path) -> None:
    write(folder, "002_caf\u00e9.sql")  # é as one character (NFC, what Linux editors write)
    write(folder, "002_cafe\u0301.sql")  # e + combining accent (NFD, what HFS+ wrote)

    error = discover_error(folder)

    assert error.file == "migrations/002_cafe\u0301.sql"
    assert "differ only in Unicode normalisation" in error.message


def test_discover__link_inside_the_folder__is_read_and_shown_as_the_link(folder: Path) -> None:
    write(folder, "shared/patients.sql", "CREATE TABLE p ();\n")
    (folder / "001_linked.sql").symlink_to("shared/patients.sql")
    (folder / "002_dir.sql").symlink_to("shared", target_is_directory=True)

    found = discover(folder)

    assert list(found) == ["001_linked"]
    assert found["001_linked"].path == "migrations/001_linked.sql"
    assert found["001_linked"].statements[0].sql == "CREATE TABLE p ()"


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_discover__link_out_of_the_folder__raises_without_reading_the_target(
    tmp_path: Path, folder: Path, relative: bool
) -> None:
    secret = tmp_path / "secret.sql"
    secret.write_bytes(b"\xff not even UTF-8, never read")
    (folder / "002_link.sql").symlink_to("../secret.sql" if relative else secret)

    error = discover_error(folder)

    assert error.file == "migrations/002_link.sql"
    assert "symbolic link to a file outside the migrations folder" in error.message
    assert "secret" not in error.message


def test_discover__dangling_link__raises_instead_of_vanishing(folder: Path) -> None:
    (folder / "002_gone.sql").symlink_to("/nonexistent/hmig/002.sql")

    error = discover_error(folder)

    assert error.message == (
        "migrations/002_gone.sql: is a broken symbolic link: what it points to does not exist"
    )


def test_discover__link_loop__raises_naming_the_first_link(folder: Path) -> None:
    (folder / "002_a.sql").symlink_to("002_b.sql")
    (folder / "002_b.sql").symlink_to("002_a.sql")

    error = discover_error(folder)

    assert error.file == "migrations/002_a.sql"
    assert (
        error.message
        == "migrations/002_a.sql: is a symbolic link that cannot be followed: it is a loop"
    )


def test_discover__empty_folder__finds_nothing(folder: Path) -> None:
    assert discovery.discover(config(folder), base_dir=folder.parent) == ()


def test_discover__folder_outside_base_dir__shows_absolute_paths(
    tmp_path: Path, folder: Path
) -> None:
    write(folder, "001_a.sql")
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()

    (migration,) = discovery.discover(config(folder), base_dir=elsewhere)

    assert migration.path == str(folder / "001_a.sql")
