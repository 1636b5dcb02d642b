"""`hmig.yml` text → a validated `Manifest`.

The manifest is checked against the shipped JSON Schema; every error names the key path and the
line in the YAML file, because that is what a person fixing it needs. Defaults (including the
stricter ones of `protected: true`) are applied here, once. This module reads no files: it is
given the text and the path it came from.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hmig.errors import ConfigurationError, ManifestError
from hmig.model import (
    BackupPolicy,
    DatabaseSpec,
    DriftPolicy,
    Environment,
    LintPolicy,
    LockRetry,
    Manifest,
    MigrationsConfig,
    TransactionMode,
)

# Defaults per setting: (unprotected, protected). Protected environments wait less for locks so a
# migration queued behind a long transaction fails fast instead of stalling the application
# (PostgreSQL docs, "lock_timeout"); the README's reference table lists the same values.
_DEFAULTS: Mapping[str, tuple[object, object]] = {
    "lock_timeout": (0, 500),
    "statement_timeout": (0, 0),
    "transaction": ("per-migration", "per-migration"),
    "strict_order": (False, False),
    "lint.fail_on": ("never", "error"),
    "backup.mode": ("none", "full"),
    "backup.required": (False, True),
    # History drift is certain and costs nothing, so every environment checks it and fails on
    # it (Flyway validates on migrate by default too); the schema check needs a shadow
    # database and a replay of every migration, so only protected environments pay for it.
    "drift.check": ("history", "both"),
    "drift.fail": (True, True),
}

# What `_check_nodes` lets through: YAML's core schema, plus `<<` merge keys and the dates
# SafeLoader resolves implicitly (the JSON Schema then rejects a date where a string belongs).
_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset(
    _YAML_TAG + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)
_MAX_VALUES = 100_000  # a real manifest has a few hundred
_TOO_DEEP = "invalid YAML: lists or mappings are nested too deeply"

_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|min|h|d)?\s*$")
_UNIT_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


@cache
def schema() -> dict[str, Any]:
    """The manifest's JSON Schema, as shipped in the package (`hmig schema` prints it)."""
    text = resources.files("hmig").joinpath("manifest.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_duration(value: int | str) -> int:
    """A PostgreSQL duration (`100ms`, `5s`, `2min`) or integer milliseconds → milliseconds."""
    if isinstance(value, int):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    amount, unit = int(match.group(1)), match.group(2) or "ms"
    return round(amount * _UNIT_MS[unit])


def parse(text: str, *, path: Path) -> Manifest:
    """Parse and validate manifest text; raise `ManifestError` naming the key and line."""
    display = path.name
    root = _compose(text, display)
    data = _construct(text, root, display)
    if not isinstance(data, dict):
        raise ManifestError(
            "the manifest must be a YAML mapping with version, migrations and environments",
            file=display,
            line=1,
            hint="Start from the example in the README: `hmig schema` prints every key.",
        )
    _reject_duplicate_keys(root, display)
    _validate(data, root, display)
    _check_renamed(data, root, display)
    default = data.get("default_environment")
    if default is not None and default not in data["environments"]:
        raise ManifestError(
            f"{default!r} is not one of the environments "
            f"({', '.join(sorted(data['environments']))})",
            file=display,
            line=_line_of(root, ["default_environment"]),
            key="default_environment",
        )
    return _build(data, path)


def select_environment(manifest: Manifest, name: str | None) -> Environment:
    """`--env`, else `default_environment`, else the only environment."""
    chosen = name or manifest.default_environment
    if chosen is None:
        if len(manifest.environments) == 1:
            return next(iter(manifest.environments.values()))
        names = ", ".join(sorted(manifest.environments))
        raise ConfigurationError(
            f"{manifest.path.name} defines several environments ({names}) and no "
            "default_environment",
            hint="Pass --env NAME, or set default_environment in the manifest.",
        )
    try:
        return manifest.environments[chosen]
    except KeyError:
        names = ", ".join(sorted(manifest.environments))
        raise ConfigurationError(
            f"environment {chosen!r} is not defined in {manifest.path.name} (defined: {names})",
            hint=_did_you_mean(chosen, manifest.environments) or "Check --env.",
        ) from None


def check_contained(
    manifest: Manifest, *, text: str, root: Path, resolved_dir: Path, repository: bool
) -> None:
    """Refuse a `migrations.dir` that resolves outside `root`; the caller resolves the paths.

    `root` is the git work tree holding the manifest (`repository`), else the manifest's own
    folder. Migrations are code run with the database owner's rights: a manifest must not make
    hmig run files from wherever `../..`, an absolute path or a symbolic link points, outside
    what the repository's review covers.
    """
    if resolved_dir.is_relative_to(root):
        return
    where = "the repository" if repository else "the manifest's folder (no git repository)"
    raise key_error(
        manifest,
        text=text,
        key=("migrations", "dir"),
        message=f"{resolved_dir} is outside {where} {root}",
        hint="Keep the migrations in the repository: a relative path (`..` is fine while it "
        "stays inside) and no symbolic link leading out of it.",
    )


def located(error: ManifestError, *, text: str) -> ManifestError:
    """`error` with the line of its key `path` in the manifest's `text`, when it had none."""
    if error.line is not None or not error.path:
        return error
    return ManifestError(
        error.reason,
        file=error.file,
        line=_line_of(_compose(text, error.file), list(error.path)),
        key=error.key,
        path=error.path,
        hint=error.hint,
    )


def key_error(
    manifest: Manifest, *, text: str, key: Sequence[str], message: str, hint: str = ""
) -> ManifestError:
    """An error about the value at `key` in the manifest, naming its file, line and key path.

    For checks made after parsing (the caller looked at the filesystem): `text` is the
    manifest's own text, read again for the line.
    """
    unplaced = ManifestError(
        message, file=manifest.path.name, key=".".join(key), path=tuple(key), hint=hint
    )
    return located(unplaced, text=text)


# --- YAML with positions ----------------------------------------------------------------------


def _compose(text: str, display: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise ManifestError(
            f"invalid YAML: {problem}",
            file=display,
            line=line,
            hint="Fix the YAML syntax; indentation must use spaces.",
        ) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", file=display) from exc
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ManifestError(_TOO_DEEP, file=display) from None


def _construct(text: str, root: yaml.Node | None, display: str) -> Any:
    """The Python value of the composed tree, once only plain YAML is known to be in it.

    `yaml.safe_load` refuses `!!python/...` tags, but with a bare traceback; other explicit tags
    (`!!int abc`, `!!timestamp x`) fail with a `ValueError` that names no line. So the tree is
    checked first (tags, recursive aliases, size), then built. It is built from a tree of its
    own: constructing merges `<<` keys into the nodes in place, and `root` must keep the lines
    as written for the duplicate-key check and the error messages.
    """
    if root is None:
        return None
    _check_nodes(root, display)
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:  # a tag allowed on a node of the wrong kind
        mark = exc.problem_mark or exc.context_mark
        raise ManifestError(
            f"invalid YAML: {exc.problem or exc}",
            file=display,
            line=mark.line + 1 if mark is not None else None,
        ) from exc
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        raise ManifestError(f"invalid YAML value: {exc}", file=display) from exc
    except RecursionError:
        raise ManifestError(_TOO_DEEP, file=display) from None
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, display: str) -> None:
    """Refuse explicit tags beyond plain YAML, recursive aliases, and alias bombs.

    A manifest needs strings, numbers, booleans, lists and mappings; `!!python/object/apply`
    would name a callable (PyYAML's SafeLoader refuses it, yet it has no place here either).
    Aliases are shared, not copied, by the loader, but the schema validation walks every use:
    nine levels of nine aliases are 387 million values (the "billion laughs" pattern).
    """
    expanded: dict[int, int] = {}

    def walk(node: yaml.Node, ancestors: tuple[int, ...]) -> int:
        if id(node) in ancestors:
            raise ManifestError(
                "a YAML alias refers to a value that contains it",
                file=display,
                line=node.start_mark.line + 1,
                hint="Anchors (&name) and aliases (*name) must not form a loop.",
            )
        if id(node) in expanded:
            return expanded[id(node)]
        if node.tag not in _PLAIN_TAGS:
            tag = str(node.tag)
            shown = "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag
            raise ManifestError(
                f"the YAML tag {shown} is not allowed: "
                "hmig reads plain YAML (strings, numbers, booleans, lists, mappings)",
                file=display,
                line=node.start_mark.line + 1,
                hint="Remove the tag (the `!…` before the value).",
            )
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        size = 1 + sum(walk(child, (*ancestors, id(node))) for child in children)
        if size > _MAX_VALUES:
            raise ManifestError(
                f"the manifest expands to more than {_MAX_VALUES} values through its aliases",
                file=display,
                line=node.start_mark.line + 1,
            )
        expanded[id(node)] = size
        return size

    try:
        walk(root, ())
    except RecursionError:
        raise ManifestError(_TOO_DEEP, file=display) from None


def _reject_duplicate_keys(node: yaml.Node | None, display: str) -> None:
    """YAML loaders silently keep the last duplicate key; a manifest must not hide a setting."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ManifestError(
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                    file=display,
                    line=key_node.start_mark.line + 1,
                    hint="Remove one of them: YAML would silently keep only the last.",
                )
            seen[key] = key_node.start_mark.line + 1
            _reject_duplicate_keys(value_node, display)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, display)


def _line_of(root: yaml.Node | None, path: Sequence[object], *, key: bool = False) -> int | None:
    """1-based line of the value (or, with `key`, of the key) at `path` in the YAML tree."""
    node = root
    key_line: int | None = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                break
            key_line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            key_line = node.start_mark.line + 1
        else:
            break
    if key and key_line is not None:
        return key_line
    return node.start_mark.line + 1 if node is not None else None


# --- validation -------------------------------------------------------------------------------


def _validate(data: dict[str, Any], root: yaml.Node | None, display: str) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    problems = sorted(
        (_describe(error, root) for error in validator.iter_errors(data)),
        key=lambda p: (p[0] or 0, p[1]),
    )
    if not problems:
        return
    line, key, message = problems[0]
    others = [f"  line {ln}: {k}: {m}" for ln, k, m in problems[1:]]
    extra = ("\n" + "\n".join(others)) if others else ""
    raise ManifestError(
        message + extra,
        file=display,
        line=line,
        key=key,
        hint="`hmig schema` prints the manifest's JSON Schema; the README lists every key.",
    )


def _describe(
    error: jsonschema.ValidationError, root: yaml.Node | None
) -> tuple[int | None, str, str]:
    path = list(error.absolute_path)
    if (
        error.validator == "additionalProperties"
        and isinstance(error.instance, dict)
        and isinstance(error.schema, dict)
    ):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        if unknown:
            bad = unknown[0]
            suggestion = _did_you_mean(str(bad), allowed)
            where = _line_of(root, [*path, bad], key=True)
            expected = ", ".join(sorted(allowed))
            text = f"unknown key {bad!r} (allowed here: {expected})"
            return where, _key_path([*path, bad]), text + (f"; {suggestion}" if suggestion else "")
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _describe_choice(error, root, path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [k for k in error.validator_value if k not in present]
        # jsonschema reports each missing key as its own error, named only in the message.
        name = next(
            (k for k in missing if repr(k) in error.message), missing[0] if missing else "?"
        )
        return _line_of(root, path), _key_path(path), f"missing required key {name!r}"
    if error.validator == "const" and path == ["version"]:
        return _line_of(root, path), "version", f"unsupported version {error.instance!r}; use 1"
    return _line_of(root, path), _key_path(path), error.message


def _describe_choice(
    error: jsonschema.ValidationError, root: yaml.Node | None, path: Sequence[object]
) -> tuple[int | None, str, str]:
    schema_ = error.schema if isinstance(error.schema, dict) else {}
    description = schema_.get("description")
    branches = schema_.get(str(error.validator), [])
    if isinstance(error.instance, dict) and branches:
        # Report the branch whose required keys are present: it is the one the author meant
        # (a database with url_env is not "missing embedded").
        for index, branch in enumerate(branches):
            required = branch.get("required", [])
            if required and all(k in error.instance for k in required):
                sub_errors = [e for e in error.context or [] if e.relative_schema_path[0] == index]
                if sub_errors:
                    return _describe(sub_errors[0], root)
        keys = " or ".join(repr(k) for b in branches for k in b.get("required", []))
        return _line_of(root, path), _key_path(path), f"expected exactly one of {keys}"
    text = f"{error.instance!r} is not valid"
    if description:
        text += f": {description}"
    return _line_of(root, path), _key_path(path), text


def _key_path(path: Sequence[object]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _did_you_mean(word: str, options: Iterator[str] | Mapping[str, object] | set[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _check_renamed(data: Mapping[str, Any], root: yaml.Node | None, display: str) -> None:
    """A rename to itself is a typo; whether the names exist is `planning`'s to check."""
    renamed = data["migrations"].get("renamed") or {}
    for old, new in renamed.items():
        if old == new:
            raise ManifestError(
                f"{old!r} is renamed to itself",
                file=display,
                line=_line_of(root, ["migrations", "renamed", old], key=True),
                key=f"migrations.renamed.{old}",
                hint="Map the name the history table holds to the file's name now.",
            )


# --- building the value -----------------------------------------------------------------------


def _build(data: dict[str, Any], path: Path) -> Manifest:
    migrations = data["migrations"]
    order = migrations.get("order")
    config = MigrationsConfig(
        dir=(path.parent / migrations["dir"]),
        table=migrations.get("table", "pgmigrations"),
        schema=migrations.get("schema", "public"),
        order=tuple(order) if order is not None else None,
        renamed=dict(migrations.get("renamed") or {}),
    )
    environments = {
        name: _environment(name, raw or {}, base_dir=path.parent)
        for name, raw in data["environments"].items()
    }
    return Manifest(
        path=path,
        migrations=config,
        default_environment=data.get("default_environment"),
        environments=environments,
    )


def _environment(name: str, raw: Mapping[str, Any], *, base_dir: Path) -> Environment:
    protected = bool(raw.get("protected", False))

    def setting(key: str) -> Any:
        section, _, leaf = key.rpartition(".")
        source = raw.get(section) or {} if section else raw
        return source.get(leaf, _DEFAULTS[key][1 if protected else 0])

    retry = raw.get("lock_retry") or {}
    lint = raw.get("lint") or {}
    defaults = LockRetry()
    return Environment(
        name=name,
        database=_database(raw.get("database")),
        protected=protected,
        lock_timeout_ms=parse_duration(setting("lock_timeout")),
        statement_timeout_ms=parse_duration(setting("statement_timeout")),
        transaction=TransactionMode(setting("transaction")),
        strict_order=bool(setting("strict_order")),
        lock_retry=LockRetry(
            budget_ms=parse_duration(retry.get("budget", defaults.budget_ms)),
            initial_delay_ms=parse_duration(retry.get("initial_delay", defaults.initial_delay_ms)),
            max_delay_ms=parse_duration(retry.get("max_delay", defaults.max_delay_ms)),
        ),
        lint=LintPolicy(fail_on=setting("lint.fail_on"), ignore=tuple(lint.get("ignore", ()))),
        backup=_backup(raw.get("backup") or {}, setting, base_dir=base_dir),
        drift=_drift(raw.get("drift") or {}, setting),
    )


def _drift(raw: Mapping[str, Any], setting: Any) -> DriftPolicy:
    return DriftPolicy(
        check=setting("drift.check"),
        fail=bool(setting("drift.fail")),
        ignore=tuple(raw.get("ignore", ())),
        privileges=bool(raw.get("privileges", False)),
        shadow_url_env=raw.get("shadow_url_env"),
        schemas=tuple(raw.get("schemas", ("public",))),
    )


def _backup(raw: Mapping[str, Any], setting: Any, *, base_dir: Path) -> BackupPolicy:
    retention = raw.get("retention") or {}
    encrypt = raw.get("encrypt") or {}
    return BackupPolicy(
        mode=setting("backup.mode"),
        required=bool(setting("backup.required")),
        dir=base_dir / raw.get("dir", "backups"),
        format=raw.get("format", "custom"),
        jobs=int(raw.get("jobs", 1)),
        retention_days=int(retention.get("days", 30)),
        retention_keep=int(retention.get("keep", 5)),
        verify=raw.get("verify", "list"),
        recipients=tuple(encrypt.get("recipients", ())),
    )


def _database(raw: Mapping[str, Any] | None) -> DatabaseSpec | None:
    if raw is None:
        return None
    if raw.get("embedded"):
        return DatabaseSpec(embedded=True, embedded_name=raw.get("name", "hmig"))
    return DatabaseSpec(url_env=raw["url_env"])
