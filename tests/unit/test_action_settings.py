"""The Action's inputs as the runner passes them, and action.yml kept in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from hmig.errors import ConfigurationError
from hmig.model import DatabaseSpec, Environment, TransactionMode
from hmig.settings import ACTION_INPUTS, Settings, conninfo_for

ROOT = Path(__file__).resolve().parents[2]


def _runner_env(**inputs: str) -> dict[str, str]:
    """Every declared input present, empty when unset, hyphens kept (github-actions.md §1.3)."""
    env = {f"INPUT_{name.upper()}": "" for name in ACTION_INPUTS}
    env.update({f"INPUT_{k.replace('_', '-').upper()}": v for k, v in inputs.items()})
    return env


def test_action_yml_declares_exactly_the_inputs_the_code_reads() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert list(action["inputs"]) == list(ACTION_INPUTS)


def test_action_yml_declares_the_outputs_the_action_writes() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    source = (ROOT / "src/hmig/action.py").read_text(encoding="utf-8")
    for name in action["outputs"]:
        assert f'"{name}":' in source, f"output {name} is declared but never written"


def test_empty_inputs_mean_the_defaults__plan_is_the_default_command() -> None:
    inputs = Settings.from_environ(_runner_env()).action_inputs()
    assert (inputs.command, inputs.manifest, inputs.working_directory, inputs.comment) == (
        "plan",
        "hmig.yml",
        ".",
        "on-change",
    )
    assert inputs.environment is None
    assert inputs.database_url is None


def test_hyphenated_inputs_are_read_and_trimmed() -> None:
    env = _runner_env(
        database_url="  postgresql://u:s3cretpw@db/app ",
        working_directory="backend",
        github_token="ghs_abc",
    )
    inputs = Settings.from_environ(env).action_inputs()
    assert inputs.database_url == "postgresql://u:s3cretpw@db/app"
    assert inputs.working_directory == "backend"
    assert inputs.github_token == "ghs_abc"


def test_secrets_stay_out_of_repr() -> None:
    env = _runner_env(database_url="postgresql://u:s3cretpw@db/app", github_token="ghs_tok123")
    inputs = Settings.from_environ(env).action_inputs()
    assert "s3cretpw" not in repr(inputs)
    assert "ghs_tok123" not in repr(inputs)


def test_an_unknown_comment_mode_names_the_input() -> None:
    with pytest.raises(ConfigurationError, match="input `comment`") as caught:
        Settings.from_environ(_runner_env(comment="sometimes")).action_inputs()
    assert "on-change" in (caught.value.hint or "")


def test_the_token_and_every_dsn_are_secrets_to_mask() -> None:
    env = {
        **_runner_env(github_token="ghs_tok123", database_url="postgresql://u:pw1234@db/app"),
        "STAGING_DATABASE_URL": "postgres://app:other-pw@staging/app",
    }
    settings = Settings.from_environ(env)
    assert {"ghs_tok123", "pw1234", "other-pw"} <= set(settings.secrets())
    assert set(settings.connection_strings()) == {
        "postgresql://u:pw1234@db/app",
        "postgres://app:other-pw@staging/app",
    }


def test_database_url_input_comes_before_the_manifest_url_env() -> None:
    env = {"STAGING_URL": "postgresql://from-env/app"}
    settings = Settings.from_environ(env).with_database_url("postgresql://from-input/app")
    environment = Environment(
        name="staging",
        database=DatabaseSpec(url_env="STAGING_URL"),
        protected=False,
        lock_timeout_ms=0,
        statement_timeout_ms=0,
        transaction=TransactionMode.PER_MIGRATION,
        strict_order=False,
    )
    assert conninfo_for(environment, settings) == "postgresql://from-input/app"
    assert conninfo_for(environment, Settings.from_environ(env)) == "postgresql://from-env/app"


def test_run_url_is_built_from_the_server_url() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://ghe.example.com",
        "GITHUB_REPOSITORY": "org/app",
        "GITHUB_RUN_ID": "42",
    }
    assert Settings.from_environ(env).github().run_url == (
        "https://ghe.example.com/org/app/actions/runs/42"
    )
    assert Settings.from_environ({}).github().run_url is None


# --- which database: a bad value names where it came from -------------------------------------


def _environment(database: DatabaseSpec | None = None) -> Environment:
    return Environment(
        name="staging",
        database=database,
        protected=False,
        lock_timeout_ms=0,
        statement_timeout_ms=0,
        transaction=TransactionMode.PER_MIGRATION,
        strict_order=False,
    )


def _refusal(environ: dict[str, str], *, spec: DatabaseSpec | None = None, url: str = "") -> str:
    settings = Settings.from_environ(environ).with_database_url(url or None)
    with pytest.raises(ConfigurationError) as caught:
        conninfo_for(_environment(spec), settings)
    return caught.value.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("this is not a url s3cr3t-pw", "is not a PostgreSQL connection string"),
        ("mysql://app:s3cr3t-pw@127.0.0.1:1/app", "holds a mysql:// URL"),
        ("  HTTPS://app:s3cr3t-pw@example.com/app", "holds a HTTPS:// URL"),
        ("host=db dbname='unclosed s3cr3t-pw", "is not a PostgreSQL connection string"),
    ],
    ids=["words", "mysql", "https", "unclosed-quote"],
)
def test_a_bad_url_names_its_variable_and_never_shows_the_value(value: str, problem: str) -> None:
    by_url_env = _refusal({"STAGING_URL": value}, spec=DatabaseSpec(url_env="STAGING_URL"))
    by_database_url = _refusal({"DATABASE_URL": value})
    by_input = _refusal({}, url=value)

    assert by_url_env.startswith(f"$STAGING_URL {problem}")
    assert by_database_url.startswith(f"$DATABASE_URL {problem}")
    assert by_input.startswith(f"the Action's input `database-url` {problem}")
    assert all("s3cr3t" not in m for m in (by_url_env, by_database_url, by_input))


@pytest.mark.parametrize(
    "value",
    ["postgresql://u@db:5432/app", "postgres://db/app", "host=db dbname=app user=u"],
    ids=["postgresql", "postgres", "keywords"],
)
def test_a_postgresql_url_or_keyword_string_is_used_as_given(value: str) -> None:
    settings = Settings.from_environ({"STAGING_URL": value})

    assert conninfo_for(_environment(DatabaseSpec(url_env="STAGING_URL")), settings) == value


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"DB_HOST": "db"}, "DB_HOST is set"),
        ({"DB_HOST": "db", "DB_PORT": "5432", "DB_USER": "app"}, "DB_HOST/DB_PORT/DB_USER are set"),
        ({"DB_HOST": "db", "DB_NAME": "  ", "DB_PASSWORD": "pw"}, "DB_HOST is set"),
    ],
    ids=["host", "host-port-user", "blank-name"],
)
def test_db_variables_without_db_name_are_refused(given: dict[str, str], named: str) -> None:
    """libpq would connect to the database named like the user: maybe not the one meant."""
    message = _refusal(given)

    assert message == f"{named} but DB_NAME is not: hmig does not guess which database to migrate"


@pytest.mark.parametrize(
    "value",
    ["postgresql://app:s3cr3t-pw@db:5432/", "postgres://db", "host=db user=app password=s3cr3t-pw"],
    ids=["url-with-slash", "url", "keywords"],
)
def test_a_url_without_a_database_name_is_refused(value: str) -> None:
    """As with the DB_* variables: libpq would pick the database named like the user."""
    by_url_env = _refusal({"STAGING_URL": value}, spec=DatabaseSpec(url_env="STAGING_URL"))
    by_database_url = _refusal({"DATABASE_URL": value})
    by_input = _refusal({}, url=value)

    assert by_url_env == (
        "$STAGING_URL names no database: libpq would connect to the one named like the user, "
        "and hmig does not guess which database to migrate"
    )
    assert by_database_url.startswith("$DATABASE_URL names no database")
    assert by_input.startswith("the Action's input `database-url` names no database")
    assert "s3cr3t" not in by_url_env + by_database_url + by_input


def test_an_empty_dbname_is_refused_even_with_pgdatabase() -> None:
    """libpq uses PGDATABASE only when dbname is absent; an empty one means the user's name."""
    message = _refusal({"DATABASE_URL": "postgresql://db?dbname=", "PGDATABASE": "app"})

    assert message.startswith("$DATABASE_URL names no database")


@pytest.mark.parametrize(
    ("value", "environ"),
    [
        ("postgresql://db:5432", {"PGDATABASE": "app"}),
        ("service=staging", {}),
        ("postgresql://db:5432", {"PGSERVICE": "staging"}),
        ("postgresql://db?dbname=app", {}),
    ],
    ids=["pgdatabase", "service", "pgservice", "dbname-parameter"],
)
def test_a_database_named_by_libpq_s_other_means_is_accepted(
    value: str, environ: dict[str, str]
) -> None:
    settings = Settings.from_environ({"DATABASE_URL": value, **environ})

    assert conninfo_for(_environment(None), settings) == value


@pytest.mark.parametrize("port", ["fivefour", "0", "65536", "54 32", "-1", "٥٤٣٢"])
def test_a_db_port_that_is_not_a_port_names_db_port(port: str) -> None:
    message = _refusal({"DB_HOST": "db", "DB_NAME": "app", "DB_PORT": port})

    assert message == f"DB_PORT is {port.strip()!r}, not a port number (1 to 65535)"


def test_complete_db_variables_form_the_connection_string() -> None:
    environ = {
        "DB_HOST": " db.internal ",
        "DB_PORT": "6432",
        "DB_NAME": "app",
        "DB_USER": "migrator",
        "DB_PASSWORD": " pw with spaces ",
    }

    conninfo = conninfo_for(_environment(), Settings.from_environ(environ))

    assert conninfo_to_dict(conninfo) == {
        "host": "db.internal",
        "port": "6432",
        "dbname": "app",
        "user": "migrator",
        "password": " pw with spaces ",
    }


def test_no_database_anywhere_says_so() -> None:
    assert _refusal({"DB_USER": "app"}) == (
        "environment 'staging' has no database: the manifest gives none, and neither "
        "DATABASE_URL nor DB_HOST/DB_NAME is set"
    )
