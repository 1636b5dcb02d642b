"""The pure logic of `hmig new`: the new file's name, its template, and the order check.

The team's guide asks for `{Date.now()}_{hyphenated-description}` file names; node-pg-migrate 9's
`create` builds the same shape. This module only turns values into values: the command reads the
clock, git config and the migrations folder, and writes the file. It must not do any I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from hmig.errors import ConfigurationError
from hmig.planning import sort_key

KINDS = ("sql", "js")
# pgmigrations.name is varchar(255) (node-pg-migrate's DDL): a longer name cannot be recorded.
MAX_NAME_LENGTH = 255
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"^\d+")


def file_name(description: str, *, now_ms: int, kind: str) -> str:
    """`{now_ms}_{slug}.{kind}`, the slug being the description lower-cased and hyphenated.

    Spaces, underscores and punctuation become single hyphens, with none at either end; accents
    are dropped (`café` → `cafe`) so the name is plain ASCII on every file system. A description
    with no letter or digit left is a `ValueError`, as is a name too long for `pgmigrations`.
    """
    _check_kind(kind)
    if now_ms < 0:
        raise ValueError(f"now_ms must be a non-negative number of milliseconds, not {now_ms}")
    slug = slugify(description)
    name = f"{now_ms}_{slug}"
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"the migration name would be {len(name)} characters long; node-pg-migrate's history "
            f"table stores at most {MAX_NAME_LENGTH} (pgmigrations.name is varchar(255)): "
            "shorten the description"
        )
    return f"{name}.{kind}"


def slugify(description: str) -> str:
    """`Add subdomain_to Tenants!` → `add-subdomain-to-tenants`; `ValueError` if nothing is left."""
    decomposed = unicodedata.normalize("NFKD", description)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    slug = _NOT_SLUG.sub("-", ascii_only.lower()).strip("-")
    if not slug:
        raise ValueError(
            f"the description {description!r} has no letters or digits to name the file after; "
            "describe the change, e.g. 'add subdomain to tenants'"
        )
    return slug


def template(kind: str, *, description: str, date: str, author: str | None) -> str:
    """The new file's text: a header comment, then empty up and down sections.

    `.sql` uses node-pg-migrate's `-- Up Migration` / `-- Down Migration` markers; `.js` is
    CommonJS with `exports.up` and `exports.down`. Every header line starts with a label, so a
    description such as "Down migration of users" can never be read as a section marker.
    """
    _check_kind(kind)
    header = [f"Migration: {_one_line(description)}", f"Created: {_one_line(date)}"]
    if author is not None and author.strip():
        header.append(f"Author: {_one_line(author)}")
    if kind == "sql":
        lines = [f"-- {line}" for line in header]
        return "\n".join([*lines, "", "-- Up Migration", "", "", "-- Down Migration", ""])
    # A `*/` in the text would end the comment early and break the module.
    lines = [" * " + line.replace("*/", "*\\/") for line in header]
    return "\n".join(
        [
            "/**",
            *lines,
            " */",
            "",
            "exports.up = (pgm) => {};",
            "",
            "exports.down = (pgm) => {};",
            "",
        ]
    )


def check_sorts_last(name: str, *, existing: Sequence[str]) -> None:
    """Refuse a new migration that would not sort after every timestamped one already there.

    `existing` holds the names of existing files and applied history rows. Only names with a
    numeric prefix count: the team's unprefixed files (`add-subdomain-to-tenants`) sort after
    every prefixed one by design. `name` may carry the `.sql`/`.js` extension `file_name` gives.
    """
    new = _without_extension(name)
    timestamped = [n for n in existing if _DIGITS.match(n)]
    if not timestamped:
        return
    last = max(timestamped, key=sort_key)
    if sort_key(new) == sort_key(last):
        raise ConfigurationError(
            f"a migration named {last!r} already exists",
            hint="Wait a millisecond and run `hmig new` again, or choose another description.",
        )
    if sort_key(new) < sort_key(last):
        raise ConfigurationError(
            f"the new migration {new!r} would sort before {last!r}, the last timestamped "
            "migration, so it would run out of order (node-pg-migrate's check-order refuses "
            "that)",
            hint="Check the system clock: the new file's prefix is the current time in "
            "milliseconds and must be greater than every existing prefix.",
        )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _without_extension(name: str) -> str:
    for kind in KINDS:
        if name.endswith(f".{kind}"):
            return name[: -len(kind) - 1]
    return name
