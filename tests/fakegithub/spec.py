"""GitHub's own descriptions of its API, to hold the fake (and hmig's client tests) to them.

`response_validator(operation_id, status, version)` validates a JSON answer against the
response schema of that operation in GitHub's OpenAPI description, as shipped by the
`@octokit/openapi` npm package (pinned in tests/fakegithub/package.json). That description is
OpenAPI 3.0, whose `nullable: true` JSON Schema does not know: the schemas are rewritten once into
JSON Schema (`type: [t, "null"]`, or `anyOf` with null) and validated with Draft 4, whose keywords
OpenAPI 3.0 uses; its `x-github-breaking-changes` give each API version's schemas.
`fixture(scenario)` reads a scenario GitHub really answered, recorded by `@octokit/fixtures`.
Both raise `SpecMissing` when `npm ci --prefix tests/fakegithub` was not run: a test must fail
then, never skip. Nothing here starts a server or touches the network.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator, FormatChecker

MODULES = Path(__file__).resolve().parent / "node_modules" / "@octokit"
OPENAPI = MODULES / "openapi" / "generated" / "api.github.com.json"
FIXTURES = MODULES / "fixtures" / "scenarios" / "api.github.com"


class SpecMissing(RuntimeError):
    """The npm packages with GitHub's description and recordings are not installed."""


def _require(path: Path) -> Path:
    if not path.exists():
        raise SpecMissing(
            f"{path} is missing: run `npm ci --prefix tests/fakegithub` (scripts/setup does)"
        )
    return path


DEFAULT_VERSION = "2022-11-28"


def _at_version(node: Any, version: str) -> Any:
    """`node` as API `version` describes it: its `x-github-breaking-changes` up to it applied.

    A change's patch is either a JSON Patch (RFC 6902: a list of operations) or a partial
    schema, where a property set to null is removed and any other key replaces the schema's.
    """
    if isinstance(node, list):
        return [_at_version(item, version) for item in node]
    if not isinstance(node, dict):
        return node
    changed = {
        k: _at_version(v, version) for k, v in node.items() if k != "x-github-breaking-changes"
    }
    for change in node.get("x-github-breaking-changes") or []:
        if change["version"] > version:
            continue
        patch = change["patch"]
        if isinstance(patch, list):
            for operation in patch:
                _json_patch(changed, operation)
            continue
        for key, value in patch.items():
            if key != "properties":
                changed[key] = value
                continue
            for name, schema in value.items():
                if schema is None:
                    changed["properties"].pop(name, None)
                else:
                    changed["properties"][name] = _at_version(schema, version)
    return changed


def _json_patch(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """Apply one RFC 6902 `remove`, `replace` or `add` to `document`, in place."""
    *parents, last = [
        t.replace("~1", "/").replace("~0", "~") for t in operation["path"].split("/")[1:]
    ]
    target: Any = document
    for token in parents:
        target = target[int(token)] if isinstance(target, list) else target[token]
    key: Any = int(last) if isinstance(target, list) and last != "-" else last
    if operation["op"] == "remove":
        del target[key]
    elif operation["op"] == "replace":
        target[key] = operation["value"]
    elif operation["op"] == "add" and isinstance(target, list):
        target.insert(len(target) if key == "-" else key, operation["value"])
    elif operation["op"] == "add":
        target[key] = operation["value"]
    else:
        raise ValueError(f"unsupported JSON Patch operation {operation!r}")


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema, everywhere in `node`."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _nullable_to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is not True:
        return converted
    if isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
        return converted
    if any(k in converted for k in ("$ref", "allOf", "oneOf", "anyOf")):
        return {"anyOf": [{"type": "null"}, converted]}
    return converted  # no type at all: null is already allowed


@functools.cache
def openapi() -> dict[str, Any]:
    """The whole OpenAPI description, parsed (13 MB; read once per process)."""
    loaded: dict[str, Any] = json.loads(_require(OPENAPI).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _components(version: str) -> dict[str, Any]:
    converted: dict[str, Any] = _nullable_to_json_schema(
        _at_version(openapi()["components"], version)
    )
    return converted


def operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """(method, path template, operation object) of an `operationId` such as issues/get-comment."""
    for path, item in openapi()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return method.upper(), path, op
    raise KeyError(f"no operation {operation_id!r} in {OPENAPI.name}")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/", 3)
        node = openapi()["components"][section][name]
    return node


def response_schema(
    operation_id: str, status: int, version: str = DEFAULT_VERSION
) -> dict[str, Any]:
    """The JSON schema GitHub documents for `operation_id` answering `status` in `version`."""
    _method, _path, op = operation(operation_id)
    responses = op["responses"]
    if str(status) not in responses:
        raise KeyError(f"{operation_id} documents no {status} answer (only {sorted(responses)})")
    response = _resolve(responses[str(status)])
    schema = response["content"]["application/json"]["schema"]
    return dict(_nullable_to_json_schema(_at_version(schema, version)))


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value) is None:
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)
_FORMATS.checks("uri")(_is_uri)


def schema_validator(schema: dict[str, Any], version: str = DEFAULT_VERSION) -> Draft4Validator:
    """A validator for `schema`, whose `#/components/…` references resolve in GitHub's file."""
    root = {**schema, "components": _components(version)}
    return Draft4Validator(root, format_checker=_FORMATS)


@functools.cache
def response_validator(
    operation_id: str, status: int, version: str = DEFAULT_VERSION
) -> Draft4Validator:
    """A validator for the answer `operation_id` documents for `status` in API `version`."""
    return schema_validator(response_schema(operation_id, status, version), version)


def component_schema(name: str, version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """A schema under `components/schemas` (e.g. issue-comment) in `version`, as JSON Schema."""
    schema: dict[str, Any] = _components(version)["schemas"][name]
    return schema


def example(name: str) -> Any:
    """GitHub's example object `components/examples/<name>`."""
    return openapi()["components"]["examples"][name]["value"]


def fixture(scenario: str) -> list[dict[str, Any]]:
    """The raw recording of an @octokit/fixtures scenario: one dict per request/answer.

    Each carries `method`, `path`, `status`, `response` and `headers` (a dict with lower-case
    names, built from the recorded `rawHeaders`).
    """
    path = _require(FIXTURES / scenario / "raw-fixture.json")
    recorded: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    for entry in recorded:
        raw = entry.get("rawHeaders", [])
        headers: dict[str, str] = {}
        for name, value in zip(raw[::2], raw[1::2], strict=True):
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        entry["headers"] = headers
    return recorded
