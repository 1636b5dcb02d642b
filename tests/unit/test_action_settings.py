"""The Action's inputs as the runner passes them, and action.yml kept in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
