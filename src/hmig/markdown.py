"""The `--json` report → the PR comment and the job summary, as GitHub-flavoured Markdown.

Both are rendered from the report document alone (a mapping that validates against
`report.schema.json`), so the Action's `command: comment`, which publishes a report uploaded by
another job and possibly forged by a fork PR, renders exactly what the run itself would. Every
string in the report is treated as hostile: names and paths go into code spans, messages are
escaped, SQL appears only inside code fences longer than any backtick run in it, and characters
that hide or reorder text are shown as their code point (U+202E). The comment fits GitHub's
65,536-character body limit, the summary the runner's 1 MiB step-summary limit: past the
budget, SQL is cut first, then the per-migration details, then the table. Pure: no I/O, no
environment, no clock.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# GitHub refuses a comment body over 65,536 characters ("Body is too long (maximum is 65536
# characters)"); third parties measured 262,144 UTF-8 bytes, which 65,536 code points never
# exceed. So the comment is measured in code points (reference: github-actions.md §3.2).
COMMENT_LIMIT = 65_536
# The runner refuses a step summary over 1 MiB: `AttachmentSizeLimit = 1024 * 1024` bytes
# (actions/runner FileCommandManager.cs), so the summary is measured in UTF-8 bytes.
SUMMARY_LIMIT = 1_048_576
# Below this a body cannot hold the heading and the note that says what was cut.
_MIN_LIMIT = 4_096

# The longest name or message rendered, in characters of the report; a forged report can hold
# more. The title's names are shorter, so the title always fits _MIN_LIMIT.
_CAP_TITLE = 100
_CAP_NAME = 300
_CAP_TEXT = 2_000
# cmark-gfm, which renders GitHub's Markdown, keeps a fence's length in a uint8_t (node.h,
# `cmark_code.fence_length`): a fence of 256 backticks is closed by any line of three. And a
# code span's backtick string is at most 80 long (inlines.c, MAXBACKTICKS): past that it is
# plain text and what it held is parsed as Markdown. Both measured with cmarkgfm 2025.10.22.
_MAX_FENCE = 255
_MAX_SPAN = 80
# Bars in the duration chart: more is unreadable, so it keeps the slowest.
_CHART_BARS = 40
_CHART_LABEL = 40

# Inline text outside code: entities for HTML, a backslash for Markdown's inline syntax
# (CommonMark §2.4: any ASCII punctuation may be backslash-escaped). Text never starts a line,
# so line-start syntax (`#`, `-`, `1.`) needs nothing. GitHub renders `$…$` as math; its docs
# prescribe `<span>$</span>` for a literal dollar. A zero-width space after `@` keeps
# `@someone` in a migration name or a message from notifying anyone.
_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "$": "<span>$</span>",
        "@": "@&#8203;",
    }
)
_RUNS = {"`": re.compile(r"`+"), "~": re.compile(r"~+")}
# A line that could close a fence of _MAX_FENCE backticks (CommonMark §4.5: up to 3 spaces).
_CLOSING_LINE = re.compile(r"^( {0,3})(`{255,})[ \t]*$", re.MULTILINE)
_LINE_BREAKS = re.compile(r" *[\r\n\t]+ *")
_CHART_UNSAFE = re.compile(r"[^A-Za-z0-9 _.-]")
_HTTP_URL = re.compile(r"^https?://\S+$")
# A hidden character is shown as e.g. <U+202E> between single angle quotes, which no SQL or name
# needs and which read as "not really there".
_QUOTED = (
    "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}{}\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}"
)
_HIDDEN = _QUOTED.format("U+{:04X}")
_URL_SAFE = "/:?#@!&+,;=%-._~"
_ICON = {"error": "❌", "warning": "⚠️"}
_VERIFIED = {"list": "verified with pg_restore --list", "restore": "verified by a test restore"}
_DRIFT_FIX = {
    "history": "Restore the migration files to what was applied, or run `hmig repair` to "
    "accept a change made on purpose.",
    "schema": "Put the change in a migration, or undo it in the database.",
}

Report = Mapping[str, Any]


def marker(environment: str | None) -> str:
    """The hidden first line that identifies hmig's comment for one environment.

    The GitHub adapter finds the comment by this exact first line and its author, never by
    searching the body: the comment quotes migration SQL, and a PR can put this marker in it.
    """
    key = quote((environment or "").encode("utf-8", "surrogatepass"), safe="")
    if len(key) > 128:  # only a forged report has such a name; keep the line short and unique
        key = f"{key[:64]}~{hashlib.sha256(key.encode('ascii')).hexdigest()[:32]}"
    return f"<!-- hmig:comment environment={key} -->"


def comment(report: Report, *, limit: int = COMMENT_LIMIT) -> str:
    """The PR comment body: the marker line, then the report, at most `limit` code points."""
    return _fit(report, _COMMENT, limit=limit)


def summary(report: Report, *, limit: int = SUMMARY_LIMIT) -> str:
    """The job summary: the full report with a chart of apply durations, at most `limit` bytes."""
    return _fit(report, _SUMMARY, limit=limit)


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _View:
    """Where the text goes: the PR comment (short lists, the marker) or the job summary."""

    surface: str
    comment: bool
    list_cap: int  # items of a list shown before "… and N more"
    statement_cap: int  # characters of the failing statement shown

    def measure(self, text: str) -> int:
        """Size as GitHub counts it: code points for a comment, UTF-8 bytes for a summary."""
        return len(text) if self.comment else len(text.encode("utf-8"))


# The comment shows the start of the failing statement; its migration's SQL is in the summary.
_COMMENT = _View(surface="comment", comment=True, list_cap=30, statement_cap=4_000)
_SUMMARY = _View(surface="job summary", comment=False, list_cap=1_000, statement_cap=100_000)


@dataclass(frozen=True, slots=True)
class _Cut:
    """What a rendering leaves out to fit its limit; the default leaves out nothing."""

    sql: tuple[int, ...] | None = None  # SQL shown per pending migration (view units); None: all
    details: bool = True  # the per-migration <details> blocks
    rows: int | None = None  # table rows; None: all


@dataclass(frozen=True, slots=True)
class _Finding:
    """Identical lint findings of one migration, counted once."""

    severity: str
    rule: str
    message: str
    help: str | None
    migration: str
    line: int | None
    statement: int | None
    count: int


@dataclass(frozen=True, slots=True)
class _Pending:
    """One pending migration, its SQL already made safe to show."""

    number: int
    name: str
    path: str
    kind: str
    transactional: bool | None
    statements: int | None
    sql: str | None
    findings: tuple[_Finding, ...]
    notices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Doc:
    """The report, read once: the raw mapping and what every rendering derives from it."""

    report: Report
    pending: tuple[_Pending, ...]
    ran: tuple[Mapping[str, Any], ...]
    findings: tuple[_Finding, ...]
    run_url: str | None


@dataclass(frozen=True, slots=True)
class _Page:
    """A report rendered for one view, less the parts a cut changes (the table, the details)."""

    doc: _Doc
    view: _View
    before: tuple[str, ...]  # above the table
    after: tuple[str, ...]  # between the table and the details
    footer: str


# --- fitting ----------------------------------------------------------------------------------


def _fit(report: Report, view: _View, *, limit: int) -> str:
    """The whole report if it fits; else cut SQL, then details, then table rows, then blocks."""
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT:,}, got {limit:,}")
    page = _page(_read(report), view)
    for attempt in (_fit_whole, _fit_sql, _fit_without_details, _fit_rows):
        body = attempt(page, limit)
        if body is not None:
            return body
    return _fit_blocks(page, limit)


def _fit_whole(page: _Page, limit: int) -> str | None:
    body = _render(page, _Cut())
    return body if page.view.measure(body) <= limit else None


def _fit_sql(page: _Page, limit: int) -> str | None:
    """Cut the SQL blocks: the small ones stay whole, the largest share what is left."""
    measure = page.view.measure
    sizes = [measure(p.sql) if p.sql else 0 for p in page.doc.pending]
    if not any(sizes):
        return None
    none = _render(page, _Cut(sql=_no_sql(page.doc)))
    if measure(none) > limit:
        return None
    # The notes and fences differ between a whole, a cut and a left-out block, so the first
    # budget is a guess: give back what a try left unused, take off what it overshot.
    best, budget = none, limit - measure(none)
    for _ in range(12):
        body = _render(page, _Cut(sql=tuple(_share(sizes, budget))))
        spare = limit - measure(body)
        if spare >= 0 and measure(body) > measure(best):
            best = body
        if 0 <= spare < 64:
            break
        budget += spare if spare > 0 else min(spare, -64)
    return best


def _fit_without_details(page: _Page, limit: int) -> str | None:
    body = _render(page, _Cut(sql=_no_sql(page.doc), details=False))
    return body if page.view.measure(body) <= limit else None


def _fit_rows(page: _Page, limit: int) -> str | None:
    """The most table rows that fit, by bisection (the rendering grows with the rows)."""
    low, high, best = 0, len(page.doc.ran or page.doc.pending) - 1, None
    while low <= high:
        rows = (low + high) // 2
        body = _render(page, _Cut(sql=_no_sql(page.doc), details=False, rows=rows))
        if page.view.measure(body) <= limit:
            best, low = body, rows + 1
        else:
            high = rows - 1
    return best


def _fit_blocks(page: _Page, limit: int) -> str:
    """Last resort, for an absurd report: whole blocks in order while they fit."""
    doc, view = page.doc, page.view
    blocks = _blocks(page, _Cut(sql=_no_sql(doc), details=False, rows=0))
    tail = f"✂️ The rest of this report is left out to fit the {view.surface}{_rest(doc, view)}."
    kept, used = blocks[:1], _size([blocks[0], tail], view)
    if used > limit:  # the title's caps keep it far below _MIN_LIMIT; this keeps the bound
        return _join([_title(doc, view).split("\n", 1)[0], tail]) if view.comment else tail
    for block in blocks[1:]:
        cost = view.measure(block) + 2
        if used + cost > limit:
            break
        kept.append(block)
        used += cost
    return _join([*kept, tail])


def _share(sizes: Sequence[int], budget: int) -> list[int]:
    """Split `budget` so blocks under the fair share show whole and the rest get equal parts."""
    shares = [0] * len(sizes)
    left = budget
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        shares[index] = min(sizes[index], left // (len(order) - position))
        left -= shares[index]
    return shares


def _no_sql(doc: _Doc) -> tuple[int, ...]:
    return (0,) * len(doc.pending)


def _size(blocks: Sequence[str], view: _View) -> int:
    """view.measure(_join(blocks)), without building it."""
    return sum(view.measure(b) for b in blocks) + 2 * (len(blocks) - 1) + 1


def _join(blocks: Sequence[str]) -> str:
    return "\n\n".join(blocks) + "\n"


# --- reading the report -----------------------------------------------------------------------


def _read(report: Report) -> _Doc:
    findings = _group(_list(report.get("findings")))
    notices: dict[str, list[str]] = {}
    for warning in _list(report.get("warnings")):
        if isinstance(warning.get("migration"), str):
            notices.setdefault(warning["migration"], []).append(_str(warning.get("code")))
    pending = tuple(
        _Pending(
            number=number,
            name=_str(row.get("name")),
            path=_str(row.get("path")),
            kind=_str(row.get("kind")),
            transactional=_bool(row.get("transactional")),
            statements=_int(row.get("statements")),
            sql=_sql(row["sql"]) if isinstance(row.get("sql"), str) else None,
            findings=tuple(f for f in findings if f.migration == row.get("name")),
            notices=tuple(notices.get(_str(row.get("name")), ())),
        )
        for number, row in enumerate(_list(report.get("pending")), start=1)
    )
    context = report.get("context")
    url = context.get("run_url") if isinstance(context, Mapping) else None
    return _Doc(
        report=report,
        pending=pending,
        ran=tuple(_list(report.get("ran"))),
        findings=findings,
        run_url=_url(url) if isinstance(url, str) else None,
    )


def _group(rows: Sequence[Mapping[str, Any]]) -> tuple[_Finding, ...]:
    """Identical findings (squawk reports one per column) counted once; errors first."""
    counted: dict[tuple[Any, ...], int] = {}
    for row in rows:
        key = tuple(
            row.get(k)
            for k in ("severity", "rule", "message", "help", "migration", "line", "statement_index")
        )
        counted[key] = counted.get(key, 0) + 1
    findings = [
        _Finding(
            severity=_str(key[0]),
            rule=_str(key[1]),
            message=_str(key[2]),
            help=key[3] if isinstance(key[3], str) else None,
            migration=_str(key[4]),
            line=_int(key[5]),
            statement=_int(key[6]),
            count=count,
        )
        for key, count in counted.items()
    ]
    # In the order of the migrations, then most severe first, then by place in the file.
    order = {name: i for i, name in enumerate(dict.fromkeys(f.migration for f in findings))}
    findings.sort(
        key=lambda f: (order[f.migration], f.severity != "error", f.line or 0, f.statement or 0)
    )
    return tuple(findings)


def _list(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float:
    """A finite, non-negative number, or 0 (a forged report may hold NaN or -1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) and value >= 0 else 0.0


# --- escaping ---------------------------------------------------------------------------------


def _visible(text: str, *, keep: str = "") -> str:
    """`text` with every character that could hide or reorder text shown as its code point.

    That is every control, format (zero-width, bidi), non-space separator, surrogate and
    unassigned character (Trojan Source, CVE-2021-42574): exactly what `str.isprintable` rejects.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _HIDDEN.format(ord(c)) for c in text)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _text(value: object, *, cap: int = _CAP_TEXT) -> str:
    """Free text (a message, a hint) as inline Markdown: one line, escaped, nothing active."""
    line = _LINE_BREAKS.sub(" ", _cap(_str(value), cap))
    return _visible(line).translate(_ESCAPES)


def _prose(value: object, *, cap: int = _CAP_TEXT) -> str:
    """Free text where `paired backticks` mark code, as in squawk's messages.

    The code goes through `_code`, the rest through `_text`; lines are joined with <br>.
    """
    lines = [line.strip() for line in _cap(_str(value), cap).splitlines()]
    return "<br>".join(_prose_line(line) for line in lines if line)


def _sentence(value: object) -> str:
    """Text that is followed by more text ends with a full stop."""
    text = _str(value).rstrip()
    return text if not text or text.endswith((".", "!", "?", ":")) else text + "."


def _prose_line(line: str) -> str:
    parts = line.split("`")
    if len(parts) % 2 == 0 or not all(part.strip() for part in parts[1::2]):
        return _text(line)
    return "".join(_code(part) if i % 2 else _text(part) for i, part in enumerate(parts))


def _code(value: object, *, cap: int = _CAP_NAME, table: bool = False) -> str:
    r"""A name or path as a code span: literal, whatever it holds (CommonMark §6.1).

    The delimiter is one backtick longer than any run inside. In a table cell `|` is written
    `\|`, which GFM's table parser takes as part of the cell (GFM spec, example 200). A run too
    long for any code span goes into <code> as escaped text instead.
    """
    text = _visible(_cap(_str(value), cap))
    longest = _longest(text, "`")
    if longest >= _MAX_SPAN:
        return f"<code>{text.translate(_ESCAPES)}</code>"
    if table:
        text = text.replace("|", "\\|")
    delimiter = "`" * (longest + 1)
    if text.startswith(("`", " ")) or text.endswith(("`", " ")):
        text = f" {text} "  # CommonMark strips one space each side; a backtick must not touch
    return f"{delimiter}{text}{delimiter}"


def _html(value: object, *, cap: int = _CAP_NAME, code: bool = False) -> str:
    """Text inside an HTML block (a <summary> line), where Markdown is not parsed."""
    text = html.escape(_visible(_cap(_str(value), cap)))
    return f"<code>{text}</code>" if code else text.replace("@", "@&#8203;")


def _sql(sql: str) -> str:
    """SQL as it is shown: one kind of line end, tabs kept, anything else invisible visible."""
    lines = sql.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "\n".join(_visible(line, keep="\t") for line in lines)


def _fence(text: str, info: str) -> str:
    """A fenced code block that nothing inside can close.

    Its fence is one backtick longer than the longest backtick run in the text (CommonMark
    §4.5). When that would pass cmark-gfm's 255, it is made of tildes, which backticks cannot
    close; when tildes run that long too, lines that could close a fence of 255 backticks are
    shown in words.
    """
    for char in ("`", "~"):
        longest = _longest(text, char)
        if longest < _MAX_FENCE:
            fence = char * max(3, longest + 1)
            return f"{fence}{info}\n{text}\n{fence}"
    text = _CLOSING_LINE.sub(lambda m: f"{m[1]}{_QUOTED.format(f'{len(m[2]):,} backticks')}", text)
    return f"{'`' * _MAX_FENCE}{info}\n{text}\n{'`' * _MAX_FENCE}"


def _longest(text: str, char: str) -> int:
    return max((len(run) for run in _RUNS[char].findall(text)), default=0)


def _url(url: str) -> str | None:
    """An http(s) URL made safe for a Markdown link destination, or None."""
    if not _HTTP_URL.match(url):
        return None
    return quote(url.encode("utf-8", "surrogatepass"), safe=_URL_SAFE)


# --- words ------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def _duration(ms: float) -> str:
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def _bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    exponent = min(3, int(math.log(n, 1024)))
    return f"{n / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


def _summary_link(doc: _Doc) -> str:
    return f"the [job summary]({doc.run_url})" if doc.run_url else "the job summary"


def _rest(doc: _Doc, view: _View) -> str:
    """Where what a text leaves out can be read, as a clause after a semicolon."""
    if view.comment:
        return f"; it is in {_summary_link(doc)}"
    return "; the `--json` report has all of it"


def _more(total: int, shown: int, noun: str, doc: _Doc, view: _View) -> list[str]:
    """The list item that says how many were left out, if any."""
    if total <= shown:
        return []
    where = f", in {_summary_link(doc)}" if view.comment else ""
    return [f"- … and {_count(total - shown, noun)} more{where}."]


# --- the document -----------------------------------------------------------------------------


def _page(doc: _Doc, view: _View) -> _Page:
    """Everything a cut does not change, rendered once."""
    before = (
        _title(doc, view),
        _meta(doc),
        _error(doc),
        _failure(doc, view),
        _drift(doc, view),
        _lint_stop(doc, view),
    )
    after = (
        None if view.comment else _chart(doc),
        _still_pending(doc, view),
        _facts(doc, view),
        _warnings(doc, view),
        _other_findings(doc, view),
    )
    return _Page(
        doc=doc,
        view=view,
        before=tuple(b for b in before if b),
        after=tuple(b for b in after if b),
        footer=_footer(doc, view),
    )


def _render(page: _Page, cut: _Cut) -> str:
    return _join(_blocks(page, cut))


def _blocks(page: _Page, cut: _Cut) -> list[str]:
    """The document as blocks, each whole Markdown (fences and <details> closed), in order."""
    doc, view = page.doc, page.view
    blocks = [*page.before]
    blocks += [b for b in (_table(doc, cut), _table_note(doc, view, cut)) if b]
    blocks += page.after
    if cut.details:
        blocks += [_details(doc, view, p, cut) for p in doc.pending if p.sql is not None]
    elif any(p.sql is not None for p in doc.pending):
        blocks.append(
            "✂️ The SQL and lint findings of each migration are left out to fit the "
            f"{view.surface}{_rest(doc, view)}."
        )
    return [*blocks, page.footer]


def _title(doc: _Doc, view: _View) -> str:
    report = doc.report
    icon, what = _status(doc)
    environment = report.get("environment")
    where = f" · {_code(environment, cap=_CAP_TITLE)}" if isinstance(environment, str) else ""
    heading = f"### {icon} hmig {_text(report.get('command'), cap=20)}{where} · {what}"
    if view.comment:
        return f"{marker(environment if isinstance(environment, str) else None)}\n{heading}"
    return heading


def _status(doc: _Doc) -> tuple[str, str]:
    """The icon and the few words that say how the run went."""
    report = doc.report
    outcome, command, failure = report.get("outcome"), report.get("command"), report.get("failure")
    drift = len(_drift_findings(doc))
    stopped = {"error": "could not run", "refused": "refused", "cancelled": "cancelled"}
    if isinstance(outcome, str) and outcome in stopped:
        return "❌", stopped[outcome]
    if outcome == "failed":
        if isinstance(failure, Mapping):
            migration = _code(failure.get("migration"), cap=_CAP_TITLE)
            if failure.get("at_commit") is True:
                return "❌", f"COMMIT failed after {migration}"
            return "❌", f"{migration} failed"
        if isinstance(report.get("error"), Mapping):
            return "❌", "failed"
        return "❌", "lint findings stop apply"
    if outcome == "drift":
        return "⚠️", f"drift: {_count(drift, 'finding')}"
    also = f" · ⚠️ drift: {_count(drift, 'finding')}" if drift else ""
    if command in ("apply", "rollback") and doc.ran:
        took = _duration(sum(_number(r.get("duration_ms")) for r in doc.ran))
        verb = "applied" if command == "apply" else "rolled back"
        return "✅", f"{_count(len(doc.ran), 'migration')} {verb} in {took}{also}"
    if command in ("plan", "status", "apply", "rollback"):
        if not doc.pending:
            return "✅", f"nothing pending{also}"
        verb = "would be rolled back" if command == "rollback" else "pending"
        return "📋", f"{_count(len(doc.pending), 'migration')} {verb}{also}"
    if command == "drift" and not drift:
        return "✅", "no drift"
    return "✅", f"done{also}"


def _meta(doc: _Doc) -> str | None:
    """Where it ran: the database's host and name (never user or port), the commit, the run."""
    parts = []
    database, context = doc.report.get("database"), doc.report.get("context")
    if isinstance(database, Mapping):
        version = database.get("server_version")
        server = f", PostgreSQL {_text(version, cap=40)}" if isinstance(version, str) else ""
        name, host = _code(database.get("name")), _code(database.get("host"))
        parts.append(f"Database {name} on {host}{server}")
    if isinstance(context, Mapping) and isinstance(context.get("sha"), str):
        parts.append(f"Commit {_code(context['sha'][:7])}")
    if doc.run_url:
        parts.append(f"[Workflow run]({doc.run_url})")
    return " · ".join(parts) or None


def _error(doc: _Doc) -> str | None:
    error = doc.report.get("error")
    if not isinstance(error, Mapping):
        return None
    lines = [f"- **Error:** {_prose(error.get('message'))}"]
    if error.get("hint"):
        lines.append(f"- **Fix:** {_prose(error.get('hint'))}")
    return "\n".join(lines)


def _failure(doc: _Doc, view: _View) -> str | None:
    """The failed migration: where (file:line:column), what the server said, what to do."""
    failure = doc.report.get("failure")
    if not isinstance(failure, Mapping):
        return None
    where = _str(failure.get("file"))
    line, column = _int(failure.get("line")), _int(failure.get("column"))
    if line:
        where += f":{line}" + (f":{column}" if column else "")
    state = failure.get("sqlstate")
    sqlstate = f" (SQLSTATE {_code(state, cap=10)})" if isinstance(state, str) else ""
    failed = f"{_code(failure.get('migration'))} at {_code(where)}"
    if failure.get("at_commit") is True:
        failed = f"the COMMIT after {_code(failure.get('migration'))} ({_code(where)})"
    lines = [
        f"- **Failed:** {failed}",
        f"- **Error:** {_prose(failure.get('message'))}{sqlstate}",
    ]
    for key, label in (("detail", "Detail"), ("hint", "Hint")):
        if failure.get(key):
            lines.append(f"- **{label}:** {_prose(failure.get(key))}")
    done, total = _int(failure.get("statements_done")), _int(failure.get("statements_total"))
    if done is not None and total is not None:
        lines.append(f"- **Statements:** {done:,} of {total:,} had run when it failed")
    if failure.get("advice"):
        lines.append(f"- **Next:** {_prose(failure.get('advice'))}")
    statement = failure.get("statement")
    if isinstance(statement, str) and statement.strip():
        rest = "; the migration's SQL is in its file" + (
            f" and in {_summary_link(doc)}" if view.comment else ""
        )
        shown, note = _clip(_sql(statement.strip()), view.statement_cap, view=view, rest=rest)
        lines += ["", "The failing statement:", "", _fence(shown, "sql")]
        lines += ["", note] if note else []
    return "\n".join(lines)


def _drift_findings(doc: _Doc) -> list[Mapping[str, Any]]:
    drift = doc.report.get("drift")
    return _list(drift.get("findings")) if isinstance(drift, Mapping) else []


def _drift(doc: _Doc, view: _View) -> str | None:
    """Drift findings grouped by the object they are about, each with what to do."""
    drift, findings = doc.report.get("drift"), _drift_findings(doc)
    if not isinstance(drift, Mapping) or not findings:
        return None
    checks = [_text(c, cap=20) for c in drift.get("checked") or () if isinstance(c, str)]
    effect = "true, so this run fails" if drift.get("fail") is True else "false"
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for finding in findings:
        groups.setdefault(_str(finding.get("object")), []).append(finding)
    lines = [f"**Drift** (checked: {', '.join(checks) or 'nothing'}; drift.fail: {effect}):", ""]
    for name in list(groups)[: view.list_cap]:
        lines.append(f"- {_code(name)}")
        for finding in groups[name]:
            since = _str(finding.get("since"))[:10]
            when = f", since {_text(since)}" if since else ""
            fix = finding.get("hint") or _DRIFT_FIX.get(_str(finding.get("check")))
            lines.append(
                f"  - **{_text(finding.get('code'), cap=60)}** ({_text(finding.get('check'))}"
                f"{when}): {_prose(_sentence(finding.get('message')))}"
                + (f" **Fix:** {_prose(fix)}" if fix else "")
            )
    return "\n".join(lines + _more(len(groups), view.list_cap, "object", doc, view))


def _lint_stop(doc: _Doc, view: _View) -> str | None:
    """When lint failed the run: the findings that did it, in sight rather than in <details>."""
    report = doc.report
    if report.get("outcome") != "failed" or report.get("failure") or report.get("error"):
        return None
    stopping = [f for f in doc.findings if f.severity == "error"] or list(doc.findings)
    if not stopping:
        return None
    lines = ["**Lint findings that stop apply:**", ""]
    lines += [f"- {_finding(f, migration=True)}" for f in stopping[: view.list_cap]]
    return "\n".join(lines + _more(len(stopping), view.list_cap, "finding", doc, view))


def _warnings(doc: _Doc, view: _View) -> str | None:
    warnings = _list(doc.report.get("warnings"))
    if not warnings:
        return None
    lines = ["**Warnings:**", ""]
    for warning in warnings[: view.list_cap]:
        where = _str(warning.get("file"))
        if where and _int(warning.get("line")):
            where += f":{warning['line']}"
        # A notice about a migration names it in its message; say where only when it does not.
        at = f" ({_code(where)})" if where and warning.get("migration") is None else ""
        code, message = _text(warning.get("code"), cap=60), _prose(warning.get("message"))
        lines.append(f"- ⚠️ **{code}:** {message}{at}")
    return "\n".join(lines + _more(len(warnings), view.list_cap, "warning", doc, view))


def _table(doc: _Doc, cut: _Cut) -> str | None:
    """What ran (apply, rollback), else what is pending, one row per migration."""
    if doc.ran:
        return _ran_table(doc.ran, cut)
    if not doc.pending:
        return None
    rows = [
        "| # | Migration | Kind | Statements | Transaction | Warnings |",
        "|--:|:--|:--|--:|:--|:--|",
    ]
    for p in doc.pending[: cut.rows]:
        statements = "—" if p.statements is None else f"{p.statements:,}"
        mode = {True: "yes", False: "**no**", None: "—"}[p.transactional]
        name, kind = _code(p.name, table=True), _text(p.kind, cap=10)
        rows.append(f"| {p.number} | {name} | {kind} | {statements} | {mode} | {_flags(p)} |")
    return "\n".join(rows)


def _flags(p: _Pending) -> str:
    """The Warnings cell: notices about the migration, then its lint counts."""
    errors = sum(f.count for f in p.findings if f.severity == "error")
    warnings = sum(f.count for f in p.findings) - errors
    words = [_text(code, cap=60) for code in p.notices]
    if errors:
        words.append(f"❌ {_count(errors, 'lint error')}")
    if warnings:
        words.append(_count(warnings, "lint warning"))
    return ", ".join(words) or "—"


def _ran_table(ran: Sequence[Mapping[str, Any]], cut: _Cut) -> str:
    retried = any(_int(r.get("retries")) for r in ran)
    header = "| # | Migration | Kind | Statements | Transaction | Duration |"
    rule = "|--:|:--|:--|--:|:--|--:|"
    rows = [header + " Lock retries |", rule + "--:|"] if retried else [header, rule]
    for number, r in enumerate(ran[: cut.rows], start=1):
        name, kind = _code(r.get("name"), table=True), _text(r.get("kind"), cap=10)
        mode = "yes" if r.get("transactional") is True else "**no**"
        took = _duration(_number(r.get("duration_ms")))
        statements = _int(r.get("statements")) or 0
        row = f"| {number} | {name} | {kind} | {statements:,} | {mode} | {took} |"
        rows.append(row + (f" {_int(r.get('retries')) or 0:,} |" if retried else ""))
    statements = sum(_int(r.get("statements")) or 0 for r in ran)
    total = _duration(sum(_number(r.get("duration_ms")) for r in ran))
    last = f"| | **Total** | | **{statements:,}** | | **{total}** |"
    return "\n".join([*rows, last + (" |" if retried else "")])


def _table_note(doc: _Doc, view: _View, cut: _Cut) -> str | None:
    """When the table is cut: how many rows it left out, and the pending ones in numbers."""
    items = doc.ran or doc.pending
    if cut.rows is None or cut.rows >= len(items):
        return None
    counts = ""
    if not doc.ran:
        js = sum(p.kind == "js" for p in doc.pending)
        outside = sum(p.transactional is False for p in doc.pending)
        flagged = sum(bool(p.findings) for p in doc.pending)
        counts = (
            f" All {len(items):,}: {js:,} js and {len(items) - js:,} sql, {outside:,} outside "
            f"a transaction, {flagged:,} with lint findings."
        )
    return (
        f"✂️ The table shows {cut.rows:,} of {_count(len(items), 'migration')} to fit the "
        f"{view.surface}{_rest(doc, view)}.{counts}"
    )


def _facts(doc: _Doc, view: _View) -> str | None:
    """The backup apply will take or took, and the lint count."""
    report, lines = doc.report, []
    plan = report.get("backup_plan")
    if isinstance(plan, Mapping):
        lines.append(f"- **Backup before apply:** {_prose(plan.get('description'))}")
    backup = report.get("backup")
    if isinstance(backup, Mapping):
        lines += _backup(backup, view)
    if doc.findings or (report.get("command") == "plan" and doc.pending):
        errors = sum(f.count for f in doc.findings if f.severity == "error")
        warnings = sum(f.count for f in doc.findings) - errors
        if errors:
            counted = _count(errors, "error") + (f", {warnings:,} warnings" * bool(warnings))
        else:
            counted = f"{_count(warnings, 'warning')}, no errors" if warnings else "no findings"
        lines.append(f"- **Lint:** {counted}")
    return "\n".join(lines) or None


def _backup(backup: Mapping[str, Any], view: _View) -> list[str]:
    verified = _str(backup.get("verified"))
    words = [
        _text(backup.get("mode"), cap=20),
        _bytes(_number(backup.get("bytes"))),
        f"{_text(backup.get('format'), cap=20)} format",
        _VERIFIED.get(verified, f"verified: {_text(verified, cap=20)}"),
        "encrypted" if backup.get("encrypted") is True else "not encrypted",
        f"taken in {_duration(_number(backup.get('duration_ms')))}",
    ]
    lines = [f"- **Backup taken:** {', '.join(words)}: {_code(backup.get('path'))}"]
    tables = [t for t in backup.get("tables") or () if isinstance(t, str)]
    if tables:
        extra = len(tables) - view.list_cap
        shown = ", ".join(_code(t) for t in tables[: view.list_cap])
        lines.append(f"- **Tables backed up:** {shown}" + (f" and {extra:,} more" * (extra > 0)))
    if not view.comment:
        lines.append(
            f"- **Backup sha256:** {_code(backup.get('sha256'), cap=80)} · pg_dump "
            f"{_text(backup.get('pg_dump_version'), cap=40)} · server "
            f"{_text(backup.get('server_version'), cap=40)}"
        )
    return lines


def _still_pending(doc: _Doc, view: _View) -> str | None:
    """After apply: what did not run (the failed migration and those after it)."""
    if doc.report.get("command") != "apply" or not doc.pending:
        return None
    extra = len(doc.pending) - view.list_cap
    names = ", ".join(_code(p.name) for p in doc.pending[: view.list_cap])
    more = f" and {extra:,} more" if extra > 0 else ""
    return f"**Still pending ({len(doc.pending):,}):** {names}{more}"


def _other_findings(doc: _Doc, view: _View) -> str | None:
    """Findings not shown with a pending migration (apply lints before it runs).

    The summary lists them; the comment has their count in the facts.
    """
    shown = {p.name for p in doc.pending if p.sql is not None}
    findings = [f for f in doc.findings if f.migration not in shown]
    if view.comment or not findings or _lint_stop(doc, view):
        return None
    lines = ["**Lint findings:**", ""]
    lines += [f"- {_finding(f, migration=True)}" for f in findings[: view.list_cap]]
    return "\n".join(lines + _more(len(findings), view.list_cap, "finding", doc, view))


def _finding(f: _Finding, *, migration: bool) -> str:
    where = [_code(f.migration)] if migration else []
    if f.line:
        where.append(f"line {f.line:,}")
    elif f.statement is not None:
        where.append(f"statement {f.statement + 1:,}")
    times = f" \N{MULTIPLICATION SIGN}{f.count}" if f.count > 1 else ""
    located = f" ({', '.join(where)})" if where else ""
    fix = f" **Fix:** {_prose(_sentence(f.help))}" if f.help else ""
    icon = _ICON.get(f.severity, "⚠️")
    return f"{icon} {_code(f.rule, cap=80)}{times}{located}: {_prose(_sentence(f.message))}{fix}"


def _details(doc: _Doc, view: _View, p: _Pending, cut: _Cut) -> str:
    """One migration, collapsed: its file and lint findings, then its SQL."""
    assert p.sql is not None
    words = [_html(p.kind, cap=10)]
    if p.statements is not None:
        words.append(_count(p.statements, "statement"))
    if p.transactional is False:
        words.append("<b>outside a transaction</b>")
    if p.findings:
        words.append(_count(sum(f.count for f in p.findings), "lint finding"))
    head = f"<summary>{p.number}. {_html(p.name, code=True)} · {' · '.join(words)}</summary>"
    lines = ["<details>", head, "", f"- **File:** {_code(p.path)}"]
    lines += [f"- {_finding(f, migration=False)}" for f in p.findings]
    allowance = cut.sql[p.number - 1] if cut.sql is not None else None
    rest = (
        f"; the full SQL is in {_summary_link(doc)}"
        if view.comment
        else "; it is in the migration file"
    )
    shown, note = _clip(p.sql, allowance, view=view, rest=rest)
    lines += ["", _fence(shown, "sql")] if shown else []
    lines += ["", note] if note else []
    return "\n".join([*lines, "", "</details>"])


def _clip(sql: str, allowance: int | None, *, view: _View, rest: str) -> tuple[str, str | None]:
    """SQL cut to `allowance` (whole lines; a single long line by characters), and a note."""
    if allowance is None or view.measure(sql) <= allowance:
        return sql, None
    lines = sql.split("\n")
    kept, used = 0, 0
    while kept < len(lines) and used + view.measure(lines[kept]) + 1 <= allowance:
        used += view.measure(lines[kept]) + 1
        kept += 1
    surface = f"✂️ Cut to fit the {view.surface}"
    if kept:
        return "\n".join(lines[:kept]), (
            f"{surface}: the first {kept:,} of {len(lines):,} lines shown{rest}."
        )
    if allowance >= 80:
        head = lines[0][:allowance]
        while view.measure(head) > allowance:  # bytes: drop as many characters as it is over
            head = head[: -(view.measure(head) - allowance)]
        return head, f"{surface}: the first {len(head):,} of {len(sql):,} characters shown{rest}."
    return "", (
        f"{surface}: SQL left out ({_count(len(lines), 'line')}, {len(sql):,} characters){rest}."
    )


def _chart(doc: _Doc) -> str | None:
    """A Mermaid bar chart of apply durations.

    Labels keep only [A-Za-z0-9 _.-]: an xychart string ends at the next `"` and has no escape
    (mermaid xychart.jison), and nothing else in a label can then reach the parser or Markdown.
    """
    if not doc.ran:
        return None
    numbered = list(enumerate(doc.ran, start=1))
    title = "Duration of each migration (ms)"
    if len(numbered) > _CHART_BARS:
        slowest = sorted(numbered, key=lambda item: -_number(item[1].get("duration_ms")))
        numbered = sorted(slowest[:_CHART_BARS], key=lambda item: item[0])
        title = f"The {_CHART_BARS} slowest of {len(doc.ran):,} migrations (ms)"
    labels = ", ".join(f'"{n}. {_chart_label(r.get("name"))}"' for n, r in numbered)
    bars = ", ".join(f"{_number(r.get('duration_ms')):.1f}" for _, r in numbered)
    lines = [
        "xychart-beta horizontal",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        '    y-axis "ms"',
        f"    bar [{bars}]",
    ]
    return _fence("\n".join(lines), "mermaid")


def _chart_label(name: object) -> str:
    label = _CHART_UNSAFE.sub("_", _str(name))
    return label if len(label) <= _CHART_LABEL else label[: _CHART_LABEL - 3] + "..."


def _footer(doc: _Doc, view: _View) -> str:
    version = f"hmig {_text(doc.report.get('hmig_version'), cap=40)}"
    if view.comment and doc.run_url:
        return f"<sub>{version} · full report in the [job summary]({doc.run_url})</sub>"
    return f"<sub>{version}</sub>"
