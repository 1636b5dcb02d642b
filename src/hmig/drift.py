"""(expected snapshot, actual snapshot) → the live-schema drift, one sentence per difference.

The expected schema is what replaying the applied migrations builds; the actual one is the
target's. Every difference names its object in words (`column public.patients.phone exists in
the database but no migration creates it`), says what differs on each side, and, where a fix is
known, says it (an INVALID index left by a failed `CREATE INDEX CONCURRENTLY` gets the commands
that rebuild it). Differences come grouped by the object they belong to (a table and its
columns, constraints, indexes, triggers and policies together); an object that is missing or
unexpected as a whole hides its parts. `drift.ignore` patterns (fnmatch, case-sensitive) match
an object's identity or the identity of the object it belongs to. Pure: snapshots in, values
out; this module must not read a database.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hmig.snapshot import SchemaObject, SchemaSnapshot, quote_name

# Attributes whose value depends on the server's major version, not on the migrations: compared
# only when the target and the shadow run the same major (an embedded PostgreSQL 18 shadow of a
# 15 target installs btree_gist 1.8 where 15 has 1.7).
_MAJOR_DEPENDENT = frozenset({("extension", "version")})
# PostgreSQL 17 added the MAINTAIN privilege: `GRANT ALL` grants it on 17+ and cannot on 15.
_MAJOR_DEPENDENT_PRIVILEGES = ("MAINTAIN",)
# The order of a group's parts in reports.
_KIND_ORDER = {
    kind: rank
    for rank, kind in enumerate(
        (
            "extension",
            "table",
            "view",
            "materialized view",
            "column",
            "constraint",
            "index",
            "trigger",
            "policy",
            "sequence",
        )
    )
}
_LONG = 100  # values longer than this are shown as an excerpt around the first difference
_CONTEXT = 30


@dataclass(frozen=True, slots=True)
class Difference:
    """One live-schema difference; maps 1:1 to a `findings` entry with `check: "schema"`."""

    code: str  # `column-unexpected`, `index-missing`, `function-changed`, `index-invalid`, …
    object: str  # the identity: `column public.patients.phone`
    message: str  # one sentence
    hint: str | None = None
    group: str | None = None  # the object it belongs to (`table public.patients`), for grouping

    def finding(self) -> dict[str, Any]:
        """The report's `drift.findings` entry."""
        return {
            "check": "schema",
            "code": self.code,
            "object": self.object,
            "message": self.message,
            "hint": self.hint,
            "since": None,
        }


def compare(
    expected: SchemaSnapshot, actual: SchemaSnapshot, *, ignore: Sequence[str] = ()
) -> list[Difference]:
    """What differs between the schema the migrations build and the database's, grouped."""
    same_major = expected.server_major == actual.server_major
    wanted, found = expected.objects, actual.objects
    differences: list[Difference] = []
    for identity in _ordered(set(wanted) | set(found), wanted, found):
        want, have = wanted.get(identity), found.get(identity)
        if want is None and have is not None:
            if not _parent_also(have, present_in=found, absent_from=wanted):
                differences.append(_unexpected(have))
        elif have is None and want is not None:
            if not _parent_also(want, present_in=wanted, absent_from=found):
                differences.append(_missing(want))
        elif want is not None and have is not None:
            differences.extend(_changed(want, have, same_major=same_major))
    return [d for d in differences if not ignored(d, ignore)]


def ignored(difference: Difference, patterns: Sequence[str]) -> bool:
    """True when a `drift.ignore` pattern matches the object or the object it belongs to."""
    names = [difference.object] + ([difference.group] if difference.group else [])
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)


# --- the three cases --------------------------------------------------------------------------


def _unexpected(have: SchemaObject) -> Difference:
    if have.kind == "index" and have.attribute("validity") == "INVALID":
        name = quote_name(have.name)
        return _difference(
            "index-invalid",
            have,
            f"index {have.name} is INVALID (left by a failed CREATE INDEX CONCURRENTLY) and no "
            "migration creates it: queries cannot use it, yet every write maintains it",
            hint=f"Drop it: DROP INDEX CONCURRENTLY IF EXISTS {name};",
        )
    return _difference(
        f"{_code(have.kind)}-unexpected",
        have,
        f"{have.identity} exists in the database but no migration creates it",
        hint="Write a migration that creates it, or drop it from the database; to accept it "
        "as it is, add it to drift.ignore.",
    )


def _missing(want: SchemaObject) -> Difference:
    return _difference(
        f"{_code(want.kind)}-missing",
        want,
        f"{want.identity} is created by the migrations but does not exist in the database",
        hint="It was dropped outside the migrations: create it again as its migration does, "
        "or write a migration that drops it.",
    )


def _changed(want: SchemaObject, have: SchemaObject, *, same_major: bool) -> list[Difference]:
    expected = _comparable(want, same_major=same_major)
    actual = _comparable(have, same_major=same_major)
    found: list[Difference] = []
    if (
        want.kind == "index"
        and actual.get("validity") == "INVALID"
        and expected.get("validity") == "valid"
    ):
        found.append(_invalid_index(have))
        expected.pop("validity")
        actual.pop("validity")
    labels = [label for label in _labels(want, have) if expected.get(label) != actual.get(label)]
    if not labels:
        return found
    if want.kind == "enum" and labels == ["labels"]:
        found.append(_enum_changed(want, have))
        return found
    parts = [_side_by_side(label, actual.get(label), expected.get(label)) for label in labels]
    found.append(
        _difference(
            f"{_code(want.kind)}-changed",
            want,
            f"{want.identity} differs: " + "; ".join(parts),
            hint="It was changed outside the migrations: change it back, or put the change "
            "in a new migration.",
        )
    )
    return found


def _invalid_index(have: SchemaObject) -> Difference:
    name = quote_name(have.name)
    return _difference(
        "index-invalid",
        have,
        f"index {have.name} is INVALID (left by a failed CREATE INDEX CONCURRENTLY): queries "
        "cannot use it, yet every write maintains it",
        hint=f"Rebuild it: REINDEX INDEX CONCURRENTLY {name}; or drop it "
        f"(DROP INDEX CONCURRENTLY {name};) and run its CREATE INDEX CONCURRENTLY again.",
    )


def _enum_changed(want: SchemaObject, have: SchemaObject) -> Difference:
    expected = _labels_of(want)
    actual = _labels_of(have)
    extra = [label for label in actual if label not in expected]
    gone = [label for label in expected if label not in actual]
    if extra and not gone and [label for label in actual if label in expected] == expected:
        message = (
            f"{want.identity} differs: label {', '.join(extra)} exists in the database but no "
            "migration adds it"
        )
    elif gone and not extra:
        message = (
            f"{want.identity} differs: label {', '.join(gone)} is added by the migrations but "
            "does not exist in the database"
        )
    else:
        message = (
            f"{want.identity} differs: labels: database {have.attribute('labels')} / "
            f"migrations {want.attribute('labels')}"
        )
    return _difference(
        "enum-changed",
        want,
        message,
        hint="An enum label cannot be dropped in place: write a migration that adds it, or "
        "recreate the type as the migrations define it.",
    )


# --- helpers ----------------------------------------------------------------------------------


def _difference(code: str, thing: SchemaObject, message: str, *, hint: str | None) -> Difference:
    return Difference(
        code=code,
        object=thing.identity,
        message=message,
        hint=hint,
        group=thing.parent or thing.identity,
    )


def _code(kind: str) -> str:
    return kind.replace(" ", "-")


def _parent_also(
    thing: SchemaObject,
    *,
    present_in: Mapping[str, SchemaObject],
    absent_from: Mapping[str, SchemaObject],
) -> bool:
    """True when the object's parent is itself on the same side only (it is reported instead)."""
    parent = thing.parent
    return parent is not None and parent in present_in and parent not in absent_from


def _ordered(
    identities: Iterable[str],
    wanted: Mapping[str, SchemaObject],
    found: Mapping[str, SchemaObject],
) -> list[str]:
    """Grouped by the object they belong to, the group's own object first."""

    def key(identity: str) -> tuple[str, int, int, str]:
        thing = wanted.get(identity) or found[identity]
        group = thing.parent or identity
        return (group, 0 if group == identity else 1, _KIND_ORDER.get(thing.kind, 99), identity)

    return sorted(identities, key=key)


def _comparable(thing: SchemaObject, *, same_major: bool) -> dict[str, str]:
    values = dict(thing.attributes)
    if same_major:
        return values
    for kind, label in _MAJOR_DEPENDENT:
        if thing.kind == kind:
            values.pop(label, None)
    if "grants" in values:
        kept = [
            entry
            for entry in values["grants"].split(", ")
            if not entry.endswith(_MAJOR_DEPENDENT_PRIVILEGES)
        ]
        values["grants"] = ", ".join(kept) or "(none)"
    return values


def _labels(want: SchemaObject, have: SchemaObject) -> list[str]:
    """Attribute labels of both, in the order the snapshot lists them."""
    labels = [label for label, _ in want.attributes]
    return labels + [label for label, _ in have.attributes if label not in labels]


def _labels_of(thing: SchemaObject) -> list[str]:
    text = thing.attribute("labels") or ""
    return [label.strip() for label in text.split(", ")] if text else []


def _side_by_side(label: str, actual: str | None, expected: str | None) -> str:
    """`type: database text / migrations character varying(20)`, long values as excerpts."""
    shown_actual, shown_expected = _excerpts(actual, expected)
    prefix = "" if label == "definition" else f"{label}: "
    return f"{prefix}database {shown_actual} / migrations {shown_expected}"


def _excerpts(actual: str | None, expected: str | None) -> tuple[str, str]:
    if actual is None or expected is None:
        return (actual or "(none)"), (expected or "(none)")
    if len(actual) <= _LONG and len(expected) <= _LONG:
        return actual, expected
    start = 0
    while start < min(len(actual), len(expected)) and actual[start] == expected[start]:
        start += 1
    begin = max(start - _CONTEXT, 0)
    return _cut(actual, begin), _cut(expected, begin)


def _cut(value: str, begin: int) -> str:
    end = begin + _LONG - _CONTEXT
    text = value[begin:end]
    return ("…" if begin else "") + text + ("…" if end < len(value) else "")
