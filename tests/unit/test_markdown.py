"""The PR comment and the job summary (hmig.markdown), rendered from `--json` reports.

Golden files (tests/golden/markdown/) compare exactly; regenerate them with
`HMIG_UPDATE_GOLDEN=1` (tests/README.md) and read the diff. The other tests assert properties:
the size bound, in the unit GitHub counts, for any report; the order in which parts are cut; and
that hostile names, messages and SQL stay contained. "Contained" is checked on the HTML that
cmark-gfm renders (cmarkgfm: GitHub's own fork of cmark, with its GFM extensions), not by
reading the Markdown back with our own assumptions.

The report fixtures (tests/fixtures/reports/) are real `hmig --json` output from
examples/hospital on PostgreSQL 15 (plan, apply, a failing apply, a connection error, a syntax
error), with `context` added as the Action sets it; drift.json and hostile.json are written by
hand in the report's shape.
"""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cmarkgfm
import jsonschema
import pytest
from cmarkgfm.cmark import Options

from hmig import markdown, reporting

TESTS = Path(__file__).resolve().parent.parent
REPORTS = TESTS / "fixtures" / "reports"
GOLDEN = TESTS / "golden" / "markdown"
UPDATE = os.environ.get("HMIG_UPDATE_GOLDEN") == "1"

RUN_URL = "https://github.com/acme/hospital/actions/runs/9876543210"
# Tags the renderings may produce: cmark-gfm's own output plus the few hmig writes itself.
ALLOWED_TAGS = {
    "a", "b", "br", "code", "details", "h3", "li", "p", "pre", "span", "strong", "sub",
    "summary", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip


def is_comment_for(body: str, environment: str | None) -> bool:
    """How the GitHub adapter recognises the comment: the marker is its exact first line."""
    return body.split("\n", 1)[0] == markdown.marker(environment)


def load(name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((REPORTS / f"{name}.json").read_text("utf-8"))
    return report


def validate(report: dict[str, Any]) -> None:
    """The report is one hmig could print: it validates against report.schema.json."""
    validator = jsonschema.Draft202012Validator(reporting.report_schema())
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(report)] == []


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as file:
            file.write(text)
    with path.open(encoding="utf-8", newline="") as file:
        assert file.read() == text, f"{path} differs; HMIG_UPDATE_GOLDEN=1 rewrites it"


# --- rendering with GitHub's parser -----------------------------------------------------------


class Tree(HTMLParser):
    """The rendered HTML as counts and texts: tags, comments, links, and text by context."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.comments: list[str] = []
        self.hrefs: list[str] = []
        self.prose: list[str] = []  # text outside code, pre and links
        self.pre: list[str] = []  # text of each <pre>
        self.cells: list[list[str]] = []  # text of each table cell, row by row
        self.feed(html)
        self.close()

    @property
    def rows(self) -> list[int]:
        """Cells per table row."""
        return [len(row) for row in self.cells]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        if tag == "pre":
            self.pre.append("")
        if tag == "tr":
            self.cells.append([])
        if tag in ("td", "th"):
            self.cells[-1].append("")
        if tag not in ("br",):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        if {"td", "th"} & set(self.stack):
            self.cells[-1][-1] += data
        if "pre" in self.stack:
            self.pre[-1] += data
        elif not {"code", "a"} & set(self.stack):
            self.prose.append(data)


def render(body: str) -> Tree:
    # UNSAFE keeps raw HTML in the output, so escaping that failed would show up as a tag.
    return Tree(cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE))


def visible(text: str, *, keep: str = "") -> str:
    """`text` as a reader must see it: every invisible character by its code point."""
    return "".join(
        c
        if c.isprintable() or c in keep
        else f"\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}U+{ord(c):04X}"
        "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}"
        for c in text
    )


def shown(sql: str) -> str:
    """What a reader must see of `sql`: the same lines, tabs, invisible characters by code point."""
    lines = sql.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "\n".join(visible(line, keep="\t") for line in lines)


def assert_contained(body: str, *, details: int) -> Tree:
    """Properties every rendering must have, whatever the report held."""
    # Nothing invisible or reordering reaches the page, in text or in code.
    assert all(c.isprintable() or c in "\n\t" for c in body)
    tree = render(body)
    assert set(tree.tags) <= ALLOWED_TAGS, set(tree.tags) - ALLOWED_TAGS
    assert tree.tags.get("details", 0) == tree.tags.get("summary", 0) == details
    # The only HTML comment is the marker, at the very top.
    if body.startswith("<!--"):
        assert tree.comments == [body.split("\n", 1)[0][4:-3]]
    else:
        assert tree.comments == []
    assert all(href.startswith("https://") for href in tree.hrefs)
    text = "".join(tree.prose)
    # No @mention outside code: a zero-width space follows every @ (notifications work on text).
    assert not re.search(r"@\w", text)
    # Every table row has as many cells as the header: no `|` got out of a cell.
    assert len(set(tree.rows)) <= 1, tree.rows
    return tree


# --- golden files -----------------------------------------------------------------------------

SCENARIOS = [
    ("plan-pending", "plan-pending"),
    ("plan-out-of-order", "plan-out-of-order"),
    ("plan-empty", "nothing-pending"),
    ("apply-ok", "apply-ok"),
    ("apply-failed", "apply-failed"),
    ("error-connection", "error"),
    ("error-syntax", "error-syntax"),
    ("drift", "drift"),
    ("hostile", "hostile"),
]


@pytest.mark.parametrize(("fixture", "name"), SCENARIOS)
def test_comment__matches_its_golden_file(fixture: str, name: str) -> None:
    report = load(fixture)
    validate(report)
    body = markdown.comment(report)
    golden(f"{name}.md", body)
    assert is_comment_for(body, report["environment"])
    assert len(body) <= markdown.COMMENT_LIMIT


@pytest.mark.parametrize("fixture", ["plan-pending", "apply-ok", "apply-failed", "hostile"])
def test_summary__matches_its_golden_file(fixture: str) -> None:
    report = load(fixture)
    body = markdown.summary(report)
    golden(f"{fixture}.summary.md", body)
    assert not body.startswith("<!--")  # the marker belongs to the comment only


def test_comment__oversized_plan_matches_its_golden_file() -> None:
    body = markdown.comment(big_plan())
    golden("oversized.md", body)


# --- what each report says --------------------------------------------------------------------


def test_plan__says_what_is_pending_with_the_sql_of_each() -> None:
    report = load("plan-pending")
    body = markdown.comment(report)
    assert "### 📋 hmig plan · `staging` · 10 migrations pending" in body
    # Database host and name only: never the user or the port.
    assert "Database `hospital` on `db.staging.internal`, PostgreSQL 15.20" in body
    assert ":5432" not in body and "postgres@" not in body
    assert f"[Workflow run]({RUN_URL})" in body
    tree = assert_contained(body, details=10)
    assert tree.rows == [6] * 11  # header and ten migrations
    # Each migration's SQL is shown exactly, in order.
    assert tree.pre == [shown(p["sql"]) + "\n" for p in report["pending"]]
    assert "- **Backup before apply:** none before apply (backup.mode: none)" in body
    assert "- **Lint:** 76 warnings, no errors" in body


def test_plan__flags_out_of_order_and_the_backup_apply_will_take() -> None:
    body = markdown.comment(load("plan-out-of-order"))
    assert "| 1 | `1600000000000_hotfix-patients-dob-index` | sql | 1 | yes | out-of-order," in body
    assert "- ⚠️ **out-of-order:** 1600000000000\\_hotfix-patients-dob-index sorts before" in body
    assert "- **Backup before apply:** backup.mode: full (required, verify: list)" in body


def test_plan__nothing_pending_is_one_line() -> None:
    body = markdown.comment(load("plan-empty"))
    assert "### ✅ hmig plan · `production` · nothing pending" in body
    assert "<details>" not in body and "| # |" not in body


def test_apply__lists_what_ran_with_durations_and_the_backup() -> None:
    report = load("apply-ok")
    body = markdown.comment(report)
    assert "### ✅ hmig apply · `production` · 10 migrations applied in 118 ms" in body
    tree = assert_contained(body, details=0)
    assert tree.rows == [6] * 12  # header, ten migrations, total
    assert "| 9 | `create-medical-records-schema` | sql | 32 | yes | 39 ms |" in body
    assert "| | **Total** | | **111** | | **118 ms** |" in body
    assert (
        "- **Backup taken:** full, 888 B, custom format, verified with pg_restore --list, "
        "not encrypted, taken in 114 ms: `/github/runner_temp/hmig/backups/" in body
    )


def test_apply__failure_says_file_line_and_column_and_what_happens_next() -> None:
    body = markdown.comment(load("apply-failed"))
    assert (
        "### ❌ hmig apply · `production` · `1800000000000_add-ward-to-encounters` failed" in body
    )
    assert (
        "- **Failed:** `1800000000000_add-ward-to-encounters` at "
        "`backend/migrations/1800000000000_add-ward-to-encounters.sql:7:8`" in body
    )
    assert '- **Error:** column "wrad" does not exist (SQLSTATE `42703`)' in body
    assert "- **Next:** This migration was rolled back. The 1 migration(s) before it" in body
    assert "**Still pending (1):** `1800000000000_add-ward-to-encounters`" in body
    tree = assert_contained(body, details=0)
    assert tree.pre == ["UPDATE encounters\n   SET ward = 'general'\n WHERE wrad IS NULL\n"]


def test_apply__failure_at_commit__names_the_commit_not_the_migration() -> None:
    # A check deferred to COMMIT failed: the migration named is only the transaction's last.
    report = load("apply-failed")
    report["failure"].update(line=None, column=None, statement=None, at_commit=True)
    body = markdown.comment(report)
    assert (
        "### ❌ hmig apply · `production` · COMMIT failed after "
        "`1800000000000_add-ward-to-encounters`" in body
    )
    assert (
        "- **Failed:** the COMMIT after `1800000000000_add-ward-to-encounters` "
        "(`backend/migrations/1800000000000_add-ward-to-encounters.sql`)" in body
    )


def test_error__says_what_and_how_to_fix_and_links_no_run_without_context() -> None:
    report = load("error-connection")
    assert report["context"] is None
    body = markdown.comment(report)
    assert "### ❌ hmig plan · `production` · could not run" in body
    # The tab psycopg puts in the message is one space, and `@` cannot mention anyone.
    assert "cannot connect to deploy@&#8203;127.0.0.1:5499/hospital: Is the server" in body
    assert "- **Fix:** Check that the server is running and the URL, user and password" in body
    assert "](" not in body  # no link at all without a context
    assert_contained(body, details=0)


def test_drift__grouped_by_object_each_with_what_to_do() -> None:
    report = load("drift")
    body = markdown.comment(report)
    assert "### ⚠️ hmig plan · `production` · drift: 4 findings" in body
    assert "**Drift** (checked: history, schema; drift.fail: true, so this run fails):" in body
    objects = [line for line in body.splitlines() if line.startswith("- `")]
    assert objects == [
        "- `migration create-tenant-branding`",
        "- `column public.patients.phone`",
        "- `table public.lab_orders`",
    ]
    findings = [line for line in body.splitlines() if line.startswith("  - **")]
    assert len(findings) == 4 and all("**Fix:**" in line for line in findings)
    assert "since 2026-11-24" in findings[0] and "run `hmig repair` to accept it." in findings[0]


def test_drift__that_does_not_fail_is_still_in_the_title() -> None:
    report = load("drift")
    report.update(outcome="ok", exit_code=0)
    report["drift"]["fail"] = False
    body = markdown.comment(report)
    assert "· 2 migrations pending · ⚠️ drift: 4 findings" in body
    assert "drift.fail: false" in body


def test_lint_failure__shows_the_findings_that_stop_apply() -> None:
    report = load("plan-out-of-order")
    report.update(outcome="failed", exit_code=1)
    report["findings"][1]["severity"] = "error"
    body = markdown.comment(report)
    assert "· lint findings stop apply" in body
    block = body.split("**Lint findings that stop apply:**\n\n", 1)[1].split("\n\n", 1)[0]
    assert block.startswith("- ❌ `prefer-text-field` (`1800000000000_add-ward-to-encounters`")
    assert block.count("\n") == 0  # the error only, not the warning


def test_summary__has_a_mermaid_chart_of_durations_with_safe_labels() -> None:
    report = load("apply-ok")
    report["ran"][0]["name"] = 'a"b`c%%{init: {"theme": "dark"}}%%\n<br>@x'
    body = markdown.summary(report)
    chart = body.split("```mermaid\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert chart[0] == "xychart-beta horizontal"
    labels = re.fullmatch(r"    x-axis \[(.*)\]", chart[2])
    assert labels is not None
    names = labels.group(1).split(", ")
    assert all(re.fullmatch(r'"\d+\. [A-Za-z0-9 _.-]*"', name) for name in names), names
    assert names[0].startswith('"1. a_b_c___init_ __theme__ _dark_')
    bars = re.fullmatch(r"    bar \[(.*)\]", chart[4])
    assert bars is not None and len(bars.group(1).split(", ")) == len(names) == 10


def test_summary__chart_keeps_the_slowest_forty_of_many() -> None:
    report = load("apply-ok")
    template = report["ran"][0]
    report["ran"] = [{**template, "name": f"m{i:03}", "duration_ms": float(i)} for i in range(100)]
    body = markdown.summary(report)
    assert 'title "The 40 slowest of 100 migrations (ms)"' in body
    assert '"61. m060"' in body and '"60. m059"' not in body


def test_run_link__only_http_and_made_safe() -> None:
    report = load("plan-empty")
    report["context"]["run_url"] = "https://x.example/runs/1) [y](javascript:alert(1))"
    assert "](" not in markdown.comment(report)  # a space: not a URL
    report["context"]["run_url"] = "https://x.example/runs/1)[y](javascript:alert(1))<b>"
    tree = render(markdown.comment(report))
    assert (
        tree.hrefs == ["https://x.example/runs/1%29%5By%5D%28javascript:alert%281%29%29%3Cb%3E"] * 2
    )


# --- hostile input ----------------------------------------------------------------------------


def test_hostile__names_messages_and_sql_stay_contained() -> None:
    report = load("hostile")
    validate(report)
    for body in (markdown.comment(report), markdown.summary(report)):
        tree = assert_contained(body, details=2)
        # The SQL is shown exactly (invisible characters by code point), inside its fence.
        assert tree.pre == [shown(p["sql"]) + "\n" for p in report["pending"]]
        assert f"{visible(chr(0x202E))}admin{visible(chr(0x202C))}" in tree.pre[0]
        # The names and messages are shown, as text, not as markup.
        text = "".join(tree.prose)
        assert "<script>alert(1)</script> **bold** _em_ ~~strike~~" in text
        assert "[x](javascript:alert(1))" in text
        assert tree.tags["table"] == 1 and tree.rows == [6, 6, 6]


def test_hostile__a_marker_inside_sql_does_not_make_the_comment_another_environments() -> None:
    body = markdown.comment(load("hostile"))
    assert markdown.marker("production") in body  # quoted by the SQL, inside a fence
    assert is_comment_for(body, "staging")
    assert not is_comment_for(body, "production")


def test_hostile__dollar_signs_in_text_cannot_start_math() -> None:
    report = load("apply-failed")
    report["failure"]["message"] = "price is $1 and $2$ or $$x$$"
    tree = render(markdown.comment(report))
    dollars = [t for t in tree.prose if "$" in t]
    assert dollars and all(t == "$" for t in dollars)  # each alone in its <span>


@pytest.mark.parametrize(
    "sql",
    [
        "```",
        "SELECT '````````````';",
        "`\n``\n```\n````",
        "~~~\n```sql\n</details>",
        "SELECT 1;\n" + "`" * 254,
    ],
)
def test_fence__is_longer_than_any_backtick_run_in_the_sql(sql: str) -> None:
    report = load("plan-out-of-order")
    report["pending"][0]["sql"] = sql
    body = markdown.comment(report)
    tree = assert_contained(body, details=2)
    assert tree.pre[0] == shown(sql) + "\n"
    fence = re.search(r"^(`{3,})sql$", body, re.MULTILINE)
    assert fence is not None
    assert len(fence.group(1)) > max(len(run) for run in re.findall("`+", sql))


def test_fence__past_255_backticks_is_made_of_tildes() -> None:
    # cmark-gfm keeps a fence's length in a byte: 256 backticks would close at any ```.
    report = load("plan-out-of-order")
    sql = "SELECT 1;\n" + "`" * 300 + "\n```\n~~~~\n</details>"
    report["pending"][0]["sql"] = sql
    body = markdown.comment(report)
    tree = assert_contained(body, details=2)
    assert tree.pre[0] == shown(sql) + "\n"
    assert "\n~~~~~sql\n" in body


def test_fence__when_both_run_past_255_the_closing_lines_are_shown_in_words() -> None:
    report = load("plan-out-of-order")
    sql = "SELECT 1;\n" + "`" * 300 + "\n   " + "`" * 255 + "  \n" + "~" * 300 + "\nSELECT 2;"
    report["pending"][0]["sql"] = sql
    tree = assert_contained(markdown.comment(report), details=2)
    words = "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}{} backticks"
    assert tree.pre[0] == (
        f"SELECT 1;\n{words.format(300)}\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}\n"
        f"   {words.format(255)}\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}\n"
        + "~" * 300
        + "\nSELECT 2;\n"
    )


@pytest.mark.parametrize(
    "name",
    [
        *("a|b", "a\\|b", "`", "``x``", " lead and trail ", "a\nb", "\u202eevil", "<!-- x", "|"),
        *("`" * 79 + "<b>x</b>", "`" * 80 + "<b>x</b>|", "a" + "`" * 298),
    ],
)
def test_name__in_a_table_cell_shows_exactly_and_keeps_the_row_whole(name: str) -> None:
    report = load("plan-out-of-order")
    report["pending"][0]["name"] = name
    tree = assert_contained(markdown.comment(report), details=2)
    assert tree.rows == [6, 6, 6]
    assert tree.cells[1][1] == visible(name)


def test_marker__is_one_comment_per_environment_and_cannot_be_closed_early() -> None:
    assert markdown.marker("staging") == "<!-- hmig:comment environment=staging -->"
    assert markdown.marker("staging") != markdown.marker("staging2")
    hostile = markdown.marker("prod -->\n<!--x --!> y")
    key = hostile.removeprefix("<!-- hmig:comment environment=").removesuffix(" -->")
    assert re.fullmatch(r"[A-Za-z0-9%._~-]+", key), key
    long = markdown.marker("e" * 10_000)
    assert len(long) < 200 and long != markdown.marker("e" * 10_001)
    body = markdown.comment(load("plan-empty"))
    assert is_comment_for(body, "production")


# --- size -------------------------------------------------------------------------------------


def big_plan(*, sql_bytes: int = 200_000, lines: bool = True) -> dict[str, Any]:
    """The example plan with one more migration of `sql_bytes` of SQL, as a PR might add."""
    report = load("plan-pending")
    row = "INSERT INTO lab_test_catalog (tenant_id, code, name) VALUES ($1, 'GLU', 'Glucose');"
    if lines:
        sql = "\n".join(f"{row} -- {i:06}" for i in range(sql_bytes // (len(row) + 11) + 1))
    else:
        sql = row * (sql_bytes // len(row) + 1)
    report["pending"].append(
        {
            "name": "1800000000000_seed-lab-test-catalog",
            "path": "backend/migrations/1800000000000_seed-lab-test-catalog.sql",
            "kind": "sql",
            "transactional": True,
            "sql": sql,
            "statements": sql.count(";"),
        }
    )
    validate(report)
    return report


def many_pending(count: int) -> dict[str, Any]:
    """`count` pending migrations like the example's, each with a lint warning."""
    report = load("plan-pending")
    template, finding = report["pending"][6], report["findings"][-1]
    names = [f"{1_700_000_000_000 + i}_add-column-{i}-to-patient-encounters" for i in range(count)]
    report["pending"] = [{**template, "name": n, "path": f"migrations/{n}.sql"} for n in names]
    report["findings"] = [{**finding, "migration": n, "file": f"migrations/{n}.sql"} for n in names]
    validate(report)
    return report


def test_comment__200_kb_migration_is_cut_and_the_small_ones_stay_whole() -> None:
    report = big_plan()
    assert len(report["pending"][-1]["sql"]) >= 200_000
    body = markdown.comment(report)
    assert len(body) <= markdown.COMMENT_LIMIT
    assert len(body) > markdown.COMMENT_LIMIT - 1_000  # the budget is used, not wasted
    # SQL shrinks first: the table and every migration's block are still there.
    tree = assert_contained(body, details=11)
    assert tree.rows == [6] * 12
    # Blocks under the fair share stay whole; the largest are cut to it, at a line end.
    whole, cut = [], []
    for pre, pending in zip(tree.pre, report["pending"], strict=True):
        sql = shown(pending["sql"]) + "\n"
        assert sql.startswith(pre)
        (whole if pre == sql else cut).append(len(sql))
    assert len(whole) >= 8 and max(whole) < min(cut)
    assert len(tree.pre[10]) < 20_000  # the 200 KB one is cut the most
    notes = re.findall(r"✂️ Cut to fit the comment: the first ([\d,]+) of ([\d,]+) lines", body)
    assert len(notes) == len(cut)
    assert notes[-1] == (f"{tree.pre[10].count(chr(10)):,}", f"{big_lines(report):,}")
    assert f"the full SQL is in the [job summary]({RUN_URL})" in body


def big_lines(report: dict[str, Any]) -> int:
    return int(report["pending"][-1]["sql"].count("\n")) + 1


def test_comment__one_200_kb_line_is_cut_by_characters() -> None:
    report = big_plan(lines=False)
    body = markdown.comment(report)
    assert len(body) <= markdown.COMMENT_LIMIT
    tree = assert_contained(body, details=11)
    assert report["pending"][-1]["sql"].startswith(tree.pre[10].rstrip("\n"))
    size = len(report["pending"][-1]["sql"])
    assert size > 200_000 and f" of {size:,} characters shown" in body


def test_comment__500_pending_migrations_leave_out_the_details_and_keep_the_table() -> None:
    body = markdown.comment(many_pending(500))
    assert len(body) <= markdown.COMMENT_LIMIT
    tree = assert_contained(body, details=0)
    assert tree.rows == [6] * 501
    assert (
        "✂️ The SQL and lint findings of each migration are left out to fit the comment; it "
        f"is in the [job summary]({RUN_URL})." in body
    )


def test_comment__1000_pending_migrations_summarise_the_table() -> None:
    report = many_pending(1_000)
    body = markdown.comment(report)
    assert len(body) <= markdown.COMMENT_LIMIT
    tree = assert_contained(body, details=0)
    rows = len(tree.rows) - 1
    assert 500 < rows < 1_000
    assert (
        f"✂️ The table shows {rows:,} of 1,000 migrations to fit the comment; it is in "
        f"the [job summary]({RUN_URL}). All 1,000: 0 js and 1,000 sql, 0 outside a "
        "transaction, 1,000 with lint findings." in body
    )
    # As many rows as fit: with room for one more row, there is one more.
    assert len(render(markdown.comment(report, limit=len(body) + 100)).rows) == rows + 2


def test_comment__cuts_sql_before_details_before_rows() -> None:
    report = many_pending(40)
    whole = markdown.comment(report, limit=10**7)
    assert markdown.comment(report, limit=len(whole)) == whole
    at_30k, at_8k, at_4k = (markdown.comment(report, limit=n) for n in (30_000, 8_000, 4_096))
    assert len(at_30k) <= 30_000 and len(at_8k) <= 8_000 and len(at_4k) <= 4_096
    assert at_30k.count("<details>") == 40 and "✂️ Cut to fit the comment" in at_30k
    assert "<details>" not in at_8k and render(at_8k).rows == [6] * 41
    assert len(render(at_4k).rows) < 41 and "✂️ The table shows" in at_4k


def test_comment__counts_code_points_not_bytes() -> None:
    report = big_plan()
    report["pending"][-1]["sql"] = "SELECT '🏥🩺';\n" * 20_000  # 4-byte characters
    body = markdown.comment(report)
    assert len(body) <= markdown.COMMENT_LIMIT < len(body.encode("utf-8"))


def test_summary__holds_a_200_kb_migration_whole() -> None:
    report = big_plan()
    body = markdown.summary(report)
    assert "✂️" not in body
    tree = assert_contained(body, details=11)
    assert tree.pre[10] == shown(report["pending"][-1]["sql"]) + "\n"


def test_summary__never_over_1_mib_in_utf8_bytes() -> None:
    report = big_plan()
    template = report["pending"][-1]
    report["pending"] += [
        {**template, "name": f"{template['name']}-{i}", "sql": "SELECT 'é';\n" * 60_000}
        for i in range(3)
    ]  # about 2.1 million bytes of SQL, 1.4 million characters
    body = markdown.summary(report)
    size = len(body.encode("utf-8"))
    assert markdown.SUMMARY_LIMIT - 10_000 < size <= markdown.SUMMARY_LIMIT
    assert "✂️ Cut to fit the job summary" in body and "; it is in the migration file." in body
    assert_contained(body, details=14)


def absurd() -> dict[str, Any]:
    """A forged report at the edge of the schema: 100 KB in every field a PR controls."""
    report = load("apply-failed")
    big = "x|`<!--@y$\u202e\n" * 10_000
    report["environment"] = big
    report["failure"].update(migration=big, message=big, statement=big, advice=big, file=big)
    report["warnings"] = [dict(report["warnings"][0], message=big[:5_000])] * 2_000
    report["ran"] = [dict(report["ran"][0], name=big[:3_000])] * 1_000
    report["pending"] = [dict(report["pending"][0], name=big[:3_000], sql=big)] * 20
    report["error"] = {"type": "X", "message": big, "hint": big}
    return report


@pytest.mark.parametrize("limit", [4_096, 10_000, 65_536])
def test_comment__never_over_the_limit_for_any_report(limit: int) -> None:
    for report in (absurd(), big_plan(), many_pending(500), load("hostile"), load("drift")):
        body = markdown.comment(report, limit=limit)
        assert len(body) <= limit
        assert is_comment_for(body, report["environment"])
        tree = render(body)
        assert tree.tags.get("details", 0) == tree.tags.get("summary", 0)
        assert all(c.isprintable() or c in "\n\t" for c in body)


def test_summary__never_over_the_limit_for_an_absurd_report() -> None:
    body = markdown.summary(absurd())
    assert len(body.encode("utf-8")) <= markdown.SUMMARY_LIMIT
    assert "✂️" in body


def test_limit__below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 4,096"):
        markdown.comment(load("plan-empty"), limit=4_095)


def test_rendering__leaves_the_report_as_it_was() -> None:
    report = load("hostile")
    before = copy.deepcopy(report)
    markdown.comment(report)
    markdown.summary(report)
    assert report == before
