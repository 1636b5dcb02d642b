"""`hmig.yml` text → `Manifest`: schema, defaults, durations, located errors, environments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from hmig import discovery, manifest
from hmig.errors import ConfigurationError, ExitCode, ManifestError
from hmig.model import (
    BackupPolicy,
    DatabaseSpec,
    DriftPolicy,
    Environment,
    LintPolicy,
    Manifest,
    MigrationsConfig,
    TransactionMode,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hospital" / "hmig.yml"
PATH = Path("/project/hmig.yml")


def parse(text: str) -> Manifest:
    return manifest.parse(textwrap.dedent(text).lstrip("\n"), path=PATH)


def parse_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse(text)
    return caught.value


def with_environment(*lines: str) -> str:
    """A valid manifest whose only environment `dev` has these extra lines (from line 8 on)."""
    body = "".join(f"    {line}\n" for line in lines)
    return (
        "version: 1\n"  # 1
        "migrations:\n"  # 2
        "  dir: migrations\n"  # 3
        "environments:\n"  # 4
        "  dev:\n"  # 5
        "    database:\n"  # 6
        "      url_env: DEV_URL\n" + body  # 7
    )


# --- a valid manifest -------------------------------------------------------------------------


def test_parse__every_key_given__builds_the_exact_manifest() -> None:
    parsed = parse(
        """
        version: 1
        migrations:
          dir: db/migrations
          table: schema_history
          schema: meta
          order:
            - 001_first
            - add-users
        default_environment: staging
        environments:
          local:
            database:
              embedded: true
              name: app_dev
          staging:
            database:
              url_env: STAGING_URL
            protected: true
            lock_timeout: 2s
            statement_timeout: 15min
            transaction: all
            strict_order: true
        """
    )

    assert parsed == Manifest(
        path=PATH,
        migrations=MigrationsConfig(
            dir=Path("/project/db/migrations"),
            table="schema_history",
            schema="meta",
            order=("001_first", "add-users"),
        ),
        default_environment="staging",
        environments={
            "local": Environment(
                name="local",
                database=DatabaseSpec(embedded=True, embedded_name="app_dev"),
                protected=False,
                lock_timeout_ms=0,
                statement_timeout_ms=0,
                transaction=TransactionMode.PER_MIGRATION,
                strict_order=False,
                backup=BackupPolicy(mode="none", required=False, dir=Path("/project/backups")),
            ),
            "staging": Environment(
                name="staging",
                database=DatabaseSpec(url_env="STAGING_URL"),
                protected=True,
                lock_timeout_ms=2_000,
                statement_timeout_ms=900_000,
                transaction=TransactionMode.ALL,
                strict_order=True,
                lint=LintPolicy(fail_on="error"),
                backup=BackupPolicy(mode="full", required=True, dir=Path("/project/backups")),
                drift=DriftPolicy(check="both", fail=True),
            ),
        },
    )
    assert list(parsed.environments) == ["local", "staging"]
    assert parsed.base_dir == Path("/project")


# --- defaults ---------------------------------------------------------------------------------


def test_parse__minimal_manifest__applies_unprotected_defaults() -> None:
    parsed = parse(
        """
        version: 1
        migrations:
          dir: migrations
        environments:
          dev: {}
        """
    )

    assert parsed.migrations == MigrationsConfig(
        dir=Path("/project/migrations"), table="pgmigrations", schema="public", order=None
    )
    assert parsed.default_environment is None
    assert parsed.environments == {
        "dev": Environment(
            name="dev",
            database=None,
            protected=False,
            lock_timeout_ms=0,
            statement_timeout_ms=0,
            transaction=TransactionMode.PER_MIGRATION,
            strict_order=False,
            backup=BackupPolicy(mode="none", required=False, dir=Path("/project/backups")),
        )
    }


def test_parse__protected_environment_without_settings__gets_the_protected_defaults() -> None:
    parsed = parse(with_environment("protected: true"))

    env = parsed.environments["dev"]
    assert env.protected is True
    assert env.lock_timeout_ms == 500
    assert env.statement_timeout_ms == 0
    assert env.transaction is TransactionMode.PER_MIGRATION
    assert env.strict_order is False
    assert env.lint.fail_on == "error"
    assert env.backup is not None
    assert (env.backup.mode, env.backup.required, env.backup.verify) == ("full", True, "list")


def test_parse__protected_environment_with_explicit_zero__keeps_the_explicit_value() -> None:
    parsed = parse(with_environment("protected: true", "lock_timeout: 0"))

    assert parsed.environments["dev"].lock_timeout_ms == 0


def test_parse__embedded_database_without_name__defaults_to_hmig() -> None:
    parsed = parse(
        """
        version: 1
        migrations:
          dir: migrations
        environments:
          dev:
            database:
              embedded: true
        """
    )

    assert parsed.environments["dev"].database == DatabaseSpec(
        url_env=None, embedded=True, embedded_name="hmig"
    )


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("100ms", 100),
        ("5s", 5_000),
        ("2min", 120_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("0", 0),
        ("250", 250),
        (" 7 s ", 7_000),
        ("1500us", 2),
        (0, 0),
        (1_500, 1_500),
    ],
)
def test_parse_duration__valid_value__returns_milliseconds(
    value: int | str, expected_ms: int
) -> None:
    assert manifest.parse_duration(value) == expected_ms


@pytest.mark.parametrize("value", ["5 seconds", "1.5s", "-1s", "s", "", "5m", "1 h 2 min"])
def test_parse_duration__not_a_duration__raises_value_error_naming_it(value: str) -> None:
    with pytest.raises(ValueError, match=r"^not a duration: ") as caught:
        manifest.parse_duration(value)

    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("written", "expected_ms"),
    [
        ("100ms", 100),
        ("5s", 5_000),
        ("2min", 120_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("250", 250),
        ("0", 0),
        ("'30s'", 30_000),
    ],
)
def test_parse__durations_in_the_manifest__become_milliseconds(
    written: str, expected_ms: int
) -> None:
    parsed = parse(with_environment(f"lock_timeout: {written}", f"statement_timeout: {written}"))

    env = parsed.environments["dev"]
    assert env.lock_timeout_ms == expected_ms
    assert env.statement_timeout_ms == expected_ms


# --- errors, located --------------------------------------------------------------------------


def test_parse__unknown_key__names_line_key_path_and_suggestion() -> None:
    error = parse_error(with_environment("lock_timout: 5s"))

    assert error.file == "hmig.yml"
    assert error.line == 8
    assert error.key == "environments.dev.lock_timout"
    assert error.message.startswith(
        "hmig.yml:8: environments.dev.lock_timout: unknown key 'lock_timout' (allowed here: "
        "backup, database, drift, lint, lock_retry, lock_timeout, protected, statement_timeout, "
        "strict_order, transaction)"
    )
    assert error.message.endswith("did you mean 'lock_timeout'?")
    assert error.exit_code is ExitCode.CANNOT


def test_parse__unknown_key_far_from_any_known_one__has_no_suggestion() -> None:
    error = parse_error(with_environment("colour: blue"))

    assert error.line == 8
    assert error.key == "environments.dev.colour"
    assert "unknown key 'colour'" in error.message
    assert "did you mean" not in error.message


def test_parse__unknown_top_level_key__suggests_the_close_key() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        environment:
          dev: {}
        environments:
          dev: {}
        """
    )

    assert error.line == 4
    assert error.key == "environment"
    assert "unknown key 'environment'" in error.message
    assert error.message.endswith("did you mean 'environments'?")


@pytest.mark.parametrize(
    ("line", "key", "fragment"),
    [
        (
            "protected: yes please",
            "environments.dev.protected",
            "'yes please' is not of type 'boolean'",
        ),
        ("strict_order: 1", "environments.dev.strict_order", "1 is not of type 'boolean'"),
        (
            "transaction: both",
            "environments.dev.transaction",
            "'both' is not one of ['per-migration', 'all']",
        ),
        (
            "lock_timeout: 5 seconds",
            "environments.dev.lock_timeout",
            "'5 seconds' is not valid: A PostgreSQL duration string",
        ),
        (
            "statement_timeout: -5",
            "environments.dev.statement_timeout",
            "-5 is not valid: A PostgreSQL duration string",
        ),
    ],
)
def test_parse__wrong_value_in_an_environment__names_line_8_and_key_path(
    line: str, key: str, fragment: str
) -> None:
    error = parse_error(with_environment(line))

    assert error.line == 8
    assert error.key == key
    assert error.message.startswith(f"hmig.yml:8: {key}: ")
    assert fragment in error.message


def test_parse__wrong_type_of_migrations_dir__names_line_and_key() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: 5
        environments:
          dev: {}
        """
    )

    assert error.line == 3
    assert error.key == "migrations.dir"
    assert error.message == "hmig.yml:3: migrations.dir: 5 is not of type 'string'"


def test_parse__several_problems__reports_the_first_line_and_lists_the_others_in_order() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
          tabel: x
        environments:
          dev:
            transaction: both
            strict_order: sometimes
        """
    )

    assert error.line == 4
    assert error.key == "migrations.tabel"
    first, *others = error.message.splitlines()
    assert first.startswith("hmig.yml:4: migrations.tabel: unknown key 'tabel'")
    assert first.endswith("did you mean 'table'?")
    assert others == [
        "  line 7: environments.dev.transaction: 'both' is not one of ['per-migration', 'all']",
        "  line 8: environments.dev.strict_order: 'sometimes' is not of type 'boolean'",
    ]


def test_parse__url_env_not_a_variable_name__names_line_and_key() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        environments:
          dev:
            database:
              url_env: 1-BAD
        """
    )

    assert error.line == 7
    assert error.key == "environments.dev.database.url_env"
    assert "'1-BAD' does not match" in error.message


@pytest.mark.parametrize(
    ("database", "line"),
    [
        ("database: {}", 6),
        ("database:\n      name: app", 7),
    ],
    ids=["empty", "only-name"],
)
def test_parse__database_with_neither_url_env_nor_embedded__asks_for_exactly_one(
    database: str, line: int
) -> None:
    error = parse_error(
        f"version: 1\nmigrations:\n  dir: migrations\nenvironments:\n  dev:\n    {database}\n"
    )

    assert error.line == line
    assert error.key == "environments.dev.database"
    assert error.message == (
        f"hmig.yml:{line}: environments.dev.database: "
        "expected exactly one of 'url_env' or 'embedded'"
    )


def test_parse__database_with_both_url_env_and_embedded__names_the_extra_key() -> None:
    error = parse_error(with_environment("  embedded: true"))

    assert error.line == 8
    assert error.key == "environments.dev.database.embedded"
    assert "unknown key 'embedded' (allowed here: url_env)" in error.message


def test_parse__embedded_false__is_rejected_at_its_line() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        environments:
          dev:
            database:
              embedded: false
        """
    )

    assert error.line == 7
    assert error.key == "environments.dev.database.embedded"
    assert "True was expected" in error.message


def test_parse__version_2__is_unsupported_on_line_1() -> None:
    error = parse_error(
        """
        version: 2
        migrations:
          dir: migrations
        environments:
          dev: {}
        """
    )

    assert error.line == 1
    assert error.key == "version"
    assert error.message == "hmig.yml:1: version: unsupported version 2; use 1"


def test_parse__missing_migrations__names_the_required_key() -> None:
    error = parse_error(
        """
        version: 1
        environments:
          dev: {}
        """
    )

    assert error.line == 1
    assert error.key == "(top level)"
    assert "missing required key 'migrations'" in error.message


def test_parse__migrations_without_dir__names_migrations_and_its_line() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          table: history
        environments:
          dev: {}
        """
    )

    assert error.line == 3
    assert error.key == "migrations"
    assert "missing required key 'dir'" in error.message


def test_parse__empty_environments__names_line_and_key() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        environments: {}
        """
    )

    assert error.line == 4
    assert error.key == "environments"
    assert error.message == "hmig.yml:4: environments: {} should be non-empty"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            "version: 1\nmigrations:\n  dir: migrations\n   table: x\nenvironments:\n  dev: {}\n",
            4,
            "mapping values are not allowed here",
        ),
        (
            "version: 1\nmigrations:\n  dir: migrations\nenvironments:\n\tdev: {}\n",
            5,
            "found character '\\t' that cannot start any token",
        ),
        (
            "version: 1\nmigrations: [migrations\nenvironments:\n  dev: {}\n",
            3,
            "expected ',' or ']'",
        ),
    ],
    ids=["indentation", "tab", "unclosed-flow"],
)
def test_parse__broken_yaml__names_the_line_of_the_problem(
    text: str, line: int, problem: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=PATH)

    error = caught.value
    assert error.line == line
    assert error.key is None
    assert error.message.startswith(f"hmig.yml:{line}: invalid YAML: ")
    assert problem in error.message
    assert "indentation must use spaces" in error.hint
    assert isinstance(error.__cause__, yaml.YAMLError)


def test_parse__duplicate_key__mentions_both_lines() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        environments:
          dev:
            lock_timeout: 1s
          staging: {}
          dev: {}
        """
    )

    assert error.line == 8
    assert error.message == "hmig.yml:8: duplicate key 'dev' (first defined on line 5)"
    assert "only the last" in error.hint


def test_parse__duplicate_nested_key__mentions_both_lines() -> None:
    error = parse_error(with_environment("lock_timeout: 1s", "protected: true", "lock_timeout: 2s"))

    assert error.line == 10
    assert "duplicate key 'lock_timeout' (first defined on line 8)" in error.message


@pytest.mark.parametrize(
    "text",
    ["- version: 1\n- migrations: {}\n", "just a string\n", "", "# only a comment\n", "42\n"],
    ids=["list", "scalar", "empty", "comment", "number"],
)
def test_parse__top_level_not_a_mapping__is_refused_on_line_1(text: str) -> None:
    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=PATH)

    assert caught.value.line == 1
    assert caught.value.message == (
        "hmig.yml:1: the manifest must be a YAML mapping with version, migrations and environments"
    )


def test_parse__default_environment_not_defined__names_key_line_and_environments() -> None:
    error = parse_error(
        """
        version: 1
        migrations:
          dir: migrations
        default_environment: prod
        environments:
          staging: {}
          dev: {}
        """
    )

    assert error.key == "default_environment"
    assert "default_environment: 'prod' is not one of the environments (dev, staging)" in (
        error.message
    )
    assert error.line == 4


# --- YAML tags, aliases and nesting: only plain YAML is read -----------------------------------

_ENVIRONMENTS = "environments:\n  dev:\n    database: {url_env: DEV_URL}\n"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/object/apply:os.system [id]", "!!python/object/apply:os.system"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!custom migrations", "!custom"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {migrations: null}", "!!set"),
    ],
    ids=["python-apply", "python-name", "local-tag", "binary", "set"],
)
def test_parse__a_tag_beyond_plain_yaml__names_the_line_and_the_tag(value: str, shown: str) -> None:
    text = f"version: 1\nmigrations: {{dir: {value}}}\n" + _ENVIRONMENTS

    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=PATH)

    assert caught.value.line == 2
    assert caught.value.message.startswith(f"hmig.yml:2: the YAML tag {shown} is not allowed")


@pytest.mark.parametrize("value", ["!!int abc", "!!float x", "!!timestamp x", "!!str [a]"], ids=str)
def test_parse__a_plain_tag_that_does_not_fit_its_value__is_a_manifest_error(value: str) -> None:
    text = f"version: 1\nmigrations: {{dir: {value}}}\n" + _ENVIRONMENTS

    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=PATH)

    assert caught.value.message.startswith("hmig.yml")
    assert "invalid YAML" in caught.value.message


def test_parse__anchors_aliases_and_merge_keys__still_work() -> None:
    parsed = parse(
        """
        version: 1
        migrations: {dir: !!str migrations}
        environments:
          staging: &base
            database: {url_env: STAGING_URL}
            lock_timeout: 2s
          production:
            <<: *base
            database: {url_env: PRODUCTION_URL}
        """
    )

    production = parsed.environments["production"]
    assert production.lock_timeout_ms == 2000
    assert production.database == DatabaseSpec(url_env="PRODUCTION_URL")


def test_parse__a_recursive_alias__is_refused_on_its_line() -> None:
    error = parse_error(
        """
        version: 1
        migrations: &loop
          dir: migrations
          order: [*loop]
        environments: {dev: {}}
        """
    )

    assert error.line == 2  # where the anchor is: the alias is the same node
    assert "alias refers to a value that contains it" in error.message


def test_parse__an_alias_bomb__is_refused_before_it_is_expanded() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for index, name in enumerate("bcdefg"):
        previous = "abcdefg"[index]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")

    with pytest.raises(ManifestError) as caught:
        manifest.parse("\n".join(levels) + "\n", path=PATH)

    assert "expands to more than 100000 values" in caught.value.message


@pytest.mark.parametrize("bracket", ["[]", "{}"])
def test_parse__nesting_deeper_than_python_recursion__is_a_manifest_error(bracket: str) -> None:
    opening, closing = bracket
    text = "version: " + opening * 5000 + closing * 5000 + "\n"

    with pytest.raises(ManifestError) as caught:
        manifest.parse(text, path=PATH)

    assert caught.value.message == "hmig.yml: invalid YAML: lists or mappings are nested too deeply"


def test_parse__every_missing_required_key__is_named_once() -> None:
    error = parse_error("default_environment: dev\n")

    assert "missing required key 'version'" in error.message
    assert "missing required key 'migrations'" in error.message
    assert "missing required key 'environments'" in error.message


# --- migrations.dir stays inside the repository ------------------------------------------------


def _repository(root: Path, manifest_dir: str = ".", migrations_dir: str = "migrations") -> Path:
    """A git work tree (a `.git` folder is all hmig looks for) with a manifest in it."""
    (root / ".git").mkdir(parents=True)
    folder = root / manifest_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hmig.yml"
    path.write_text(
        f"version: 1\nmigrations:\n  dir: {migrations_dir}\n" + _ENVIRONMENTS, encoding="utf-8"
    )
    return path


@pytest.mark.parametrize(
    "migrations_dir",
    ["migrations", "../db/migrations", "./x/../../db/migrations"],
    ids=["plain", "sibling-folder", "dot-dot-inside"],
)
def test_load_manifest__dir_inside_the_repository__is_accepted(
    tmp_path: Path, migrations_dir: str
) -> None:
    path = _repository(tmp_path / "repo", "backend", migrations_dir)
    (path.parent / migrations_dir).mkdir(parents=True, exist_ok=True)

    loaded = discovery.load_manifest(path)

    assert loaded.migrations.dir.resolve().is_relative_to((tmp_path / "repo").resolve())


@pytest.mark.parametrize(
    "migrations_dir", ["../../outside", "../../repo-sibling/migrations", "/etc"], ids=str
)
def test_load_manifest__dir_outside_the_repository__names_the_key_and_line(
    tmp_path: Path, migrations_dir: str
) -> None:
    path = _repository(tmp_path / "repo", "backend", migrations_dir)

    with pytest.raises(ManifestError) as caught:
        discovery.load_manifest(path)

    error = caught.value
    assert (error.file, error.line, error.key) == ("hmig.yml", 3, "migrations.dir")
    assert "is outside the repository" in error.message
    assert str((tmp_path / "repo").resolve()) in error.message
    assert error.exit_code == ExitCode.CANNOT


def test_load_manifest__a_symlink_leading_out_of_the_repository__is_refused(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = _repository(tmp_path / "repo", ".", "linked/migrations")
    (tmp_path / "repo" / "linked").symlink_to(outside, target_is_directory=True)

    with pytest.raises(ManifestError) as caught:
        discovery.load_manifest(path)

    assert f"{outside.resolve()}/migrations is outside the repository" in caught.value.message


def test_load_manifest__a_symlink_within_the_repository__is_accepted(tmp_path: Path) -> None:
    path = _repository(tmp_path / "repo", ".", "current")
    (tmp_path / "repo" / "db" / "v2").mkdir(parents=True)
    (tmp_path / "repo" / "current").symlink_to(tmp_path / "repo" / "db" / "v2")

    assert discovery.load_manifest(path).migrations.dir.name == "current"


def test_load_manifest__a_git_file_marks_a_worktree_root(tmp_path: Path) -> None:
    """A worktree or submodule has a `.git` file, not a folder."""
    root = tmp_path / "worktree"
    (root / "app").mkdir(parents=True)
    (root / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n", encoding="utf-8")
    path = root / "app" / "hmig.yml"
    path.write_text("version: 1\nmigrations: {dir: ../db}\n" + _ENVIRONMENTS, encoding="utf-8")
    (root / "db").mkdir()

    assert discovery.repository_root(path.parent.resolve()) == root.resolve()
    assert discovery.load_manifest(path).migrations.dir == root.resolve() / "app" / ".." / "db"


def test_load_manifest__without_a_repository__the_manifest_folder_is_the_limit(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    path = project / "hmig.yml"
    assert discovery.repository_root(project.resolve()) is None  # tmp_path is in no work tree
    path.write_text("version: 1\nmigrations: {dir: ../shared}\n" + _ENVIRONMENTS, "utf-8")

    with pytest.raises(ManifestError) as caught:
        discovery.load_manifest(path)

    assert "outside the manifest's folder (no git repository)" in caught.value.message
    path.write_text("version: 1\nmigrations: {dir: db/migrations}\n" + _ENVIRONMENTS, "utf-8")
    (project / "db" / "migrations").mkdir(parents=True)
    assert discovery.load_manifest(path).migrations.dir == project.resolve() / "db/migrations"


# --- select_environment -----------------------------------------------------------------------

SEVERAL = """
version: 1
migrations:
  dir: migrations
environments:
  development: {}
  staging:
    protected: true
"""


def test_select_environment__explicit_name__wins_over_default() -> None:
    parsed = parse(SEVERAL + "default_environment: development\n")

    assert manifest.select_environment(parsed, "staging").name == "staging"


def test_select_environment__no_name__uses_default_environment() -> None:
    parsed = parse(SEVERAL + "default_environment: staging\n")

    chosen = manifest.select_environment(parsed, None)

    assert chosen.name == "staging"
    assert chosen.protected is True


def test_select_environment__no_name_and_only_one_environment__uses_it() -> None:
    parsed = parse(with_environment())

    assert manifest.select_environment(parsed, None).name == "dev"


def test_select_environment__several_without_default__raises_listing_them() -> None:
    parsed = parse(SEVERAL)

    with pytest.raises(ConfigurationError) as caught:
        manifest.select_environment(parsed, None)

    assert caught.value.message == (
        "hmig.yml defines several environments (development, staging) and no default_environment"
    )
    assert "--env NAME" in caught.value.hint
    assert caught.value.exit_code is ExitCode.CANNOT


@pytest.mark.parametrize(
    ("name", "hint"),
    [("stagin", "did you mean 'staging'?"), ("prod", "Check --env.")],
)
def test_select_environment__unknown_name__raises_with_suggestion(name: str, hint: str) -> None:
    parsed = parse(SEVERAL)

    with pytest.raises(ConfigurationError) as caught:
        manifest.select_environment(parsed, name)

    assert caught.value.message == (
        f"environment {name!r} is not defined in hmig.yml (defined: development, staging)"
    )
    assert caught.value.hint == hint
    assert caught.value.exit_code is ExitCode.CANNOT


# --- the schema itself ------------------------------------------------------------------------


def test_schema__is_a_valid_draft_2020_12_schema() -> None:
    schema = manifest.schema()

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {
        "version",
        "migrations",
        "environments",
        "default_environment",
    }


def test_schema__defaults_documented_in_it__match_the_unprotected_defaults() -> None:
    schema = manifest.schema()
    migrations = schema["properties"]["migrations"]["properties"]
    environment = schema["$defs"]["environment"]["properties"]
    parsed = parse(with_environment())
    env = parsed.environments["dev"]

    assert migrations["table"]["default"] == parsed.migrations.table
    assert migrations["schema"]["default"] == parsed.migrations.schema
    assert environment["transaction"]["default"] == env.transaction.value
    assert environment["strict_order"]["default"] is env.strict_order
    assert environment["protected"]["default"] is env.protected


def test_schema__example_manifest__validates_and_parses() -> None:
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE.relative_to(REPO)} does not exist yet")
    text = EXAMPLE.read_text(encoding="utf-8")

    jsonschema.Draft202012Validator(manifest.schema()).validate(yaml.safe_load(text))
    parsed = manifest.parse(text, path=EXAMPLE)
    assert parsed.default_environment is not None
    assert manifest.select_environment(parsed, None).name == parsed.default_environment
