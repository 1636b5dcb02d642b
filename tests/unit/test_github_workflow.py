"""Workflow commands, `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`, read back as the runner would.

`_runner_commands` and `_runner_outputs` are small ports of actions/runner's parsers
(`ActionCommandManager`/`ActionCommand.TryParseV2` for log lines, `FileCommandManager` for
environment files; github-actions.md §2), so each test checks what GitHub would do with the
text, not the text's shape alone.
"""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest

from hmig.github import workflow
from hmig.github.workflow import Annotation, Level, WorkflowLog

# --- a port of the runner's parsers --------------------------------------------------------

_UNESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))


def _unescape(text: str) -> str:
    # ActionCommand.UnescapeProperty/UnescapeData: `%25` is undone last.
    for escaped, raw in _UNESCAPES:
        text = text.replace(escaped, raw)
    return text


def _runner_commands(log: str) -> list[tuple[str, dict[str, str], str]]:
    """(command, properties, data) for every line the runner would run, honouring stop-commands."""
    ran: list[tuple[str, dict[str, str], str]] = []
    resume: str | None = None
    for line in log.splitlines():
        text = line.lstrip()
        if resume is not None:
            if text == f"::{resume}::":
                resume = None
            continue
        if not text.startswith("::"):
            continue
        end = text.find("::", 2)
        if end < 0:
            continue
        head, data = text[2:end], _unescape(text[end + 2 :])
        name, _, props_text = head.partition(" ")
        props: dict[str, str] = {}
        for pair in filter(None, props_text.split(",")):
            key, _, value = pair.partition("=")
            props[key] = _unescape(value)
        ran.append((name, props, data))
        if name == "stop-commands":
            resume = data
    return ran


def _runner_outputs(text: str) -> dict[str, str]:
    """FileCommandManager's heredoc parser (Linux: LF only), as it reads `$GITHUB_OUTPUT`."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        name, sep, delimiter = line.partition("<<")
        if not sep or "=" in name:
            name, _, value = line.partition("=")
            outputs[name] = value
            continue
        value_lines: list[str] = []
        while lines[i] != delimiter:
            value_lines.append(lines[i])
            i += 1
        i += 1
        outputs[name] = "\n".join(value_lines)
    return outputs


# --- escaping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("%0A is not a newline", "%250A is not a newline", "%250A is not a newline"),
        ("a\nb\r\nc", "a%0Ab%0D%0Ac", "a%0Ab%0D%0Ac"),
        (
            "db/001_x.sql: line 3, col 4",
            "db/001_x.sql: line 3, col 4",
            "db/001_x.sql%3A line 3%2C col 4",
        ),
        ("::error::x", "::error::x", "%3A%3Aerror%3A%3Ax"),
    ],
)
def test_escaping_matches_the_toolkit(raw: str, data: str, prop: str) -> None:
    assert workflow.escape_data(raw) == data
    assert workflow.escape_property(raw) == prop
    assert _unescape(data) == raw
    assert _unescape(prop) == raw


def test_an_annotation_reaches_the_runner_whole() -> None:
    message = 'column "nme" does not exist\nHINT: 100% sure: perhaps you meant "name".'
    annotation = Annotation(
        level=Level.ERROR,
        message=message,
        file="db/migrations/002_b,c.sql",
        line=3,
        end_line=3,
        col=7,
        end_column=9,
        title="Migration 002: failed",
    )
    line = workflow.format_annotation(annotation)
    assert "\n" not in line
    assert _runner_commands(line) == [
        (
            "error",
            {
                "file": "db/migrations/002_b,c.sql",
                "line": "3",
                "endLine": "3",
                "col": "7",
                "endColumn": "9",
                "title": "Migration 002: failed",
            },
            message,
        )
    ]


def test_properties_left_out_are_not_written() -> None:
    line = workflow.format_annotation(Annotation(level=Level.NOTICE, message="ok"))
    assert line == "::notice::ok"


def test_a_long_message_is_cut_where_github_cuts_it_and_says_so() -> None:
    line = workflow.format_annotation(Annotation(level=Level.WARNING, message="x" * 5000))
    [(_, _, data)] = _runner_commands(line)
    assert len(data) == workflow.MESSAGE_LIMIT
    assert data.endswith("…")


# --- the log ------------------------------------------------------------------------------


def _log() -> tuple[WorkflowLog, io.StringIO]:
    stream = io.StringIO()
    return WorkflowLog(stream), stream


def test_add_mask_escapes_the_value_and_skips_an_empty_one() -> None:
    log, stream = _log()
    log.add_mask("pa%ss:w,rd\nline2")
    log.add_mask("")
    log.add_mask("   ")
    assert _runner_commands(stream.getvalue()) == [("add-mask", {}, "pa%ss:w,rd\nline2")]


def test_group_is_closed_even_when_its_body_raises() -> None:
    log, stream = _log()
    with pytest.raises(RuntimeError), log.group("hmig apply · production"):
        raise RuntimeError("boom")
    assert [c[0] for c in _runner_commands(stream.getvalue())] == ["group", "endgroup"]
    assert _runner_commands(stream.getvalue())[0][2] == "hmig apply · production"


HOSTILE_SQL = """\
-- a migration whose author tries to talk to the runner
CREATE TABLE t (id int);
::error file=x.sql,line=1::forged annotation
   ::add-mask::password
##[warning]legacy form
::endgroup::
::stop-commands::guess
"""


def test_verbatim_text_never_runs_as_a_command() -> None:
    log, stream = _log()
    log.verbatim(HOSTILE_SQL)
    ran = _runner_commands(stream.getvalue())
    assert [name for name, _, _ in ran] == ["stop-commands"]
    token = ran[0][2]
    printed = stream.getvalue().splitlines()
    assert printed[0] == f"::stop-commands::{token}"
    assert printed[-1] == f"::{token}::"
    assert printed[1:-1] == HOSTILE_SQL.splitlines()  # the text itself is shown unchanged


def test_every_stop_commands_token_is_fresh_and_unguessable() -> None:
    log, stream = _log()
    for _ in range(3):
        log.verbatim("SELECT 1;")
    tokens = [data for name, _, data in _runner_commands(stream.getvalue())]
    assert len(set(tokens)) == 3
    # Long enough to be masked by the runner (> 6 characters) and no command's name.
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)


def test_commands_after_the_stopped_section_run_again() -> None:
    log, stream = _log()
    with log.stop_commands():
        log.echo("::warning::inside")
    log.annotation("warning", "after", title="t")
    ran = _runner_commands(stream.getvalue())
    assert [(n, d) for n, _, d in ran][1:] == [("warning", "after")]


@pytest.mark.parametrize(
    ("text", "wrapped"),
    [
        ("Applied 001_init in 12 ms", False),
        ("a: b :: c", False),
        ("  ::error::forged", True),
        ("##[error]forged", True),
        ("ok\n::set-output name=x::y", True),
    ],
)
def test_echo_wraps_only_text_that_could_run(text: str, wrapped: bool) -> None:
    log, stream = _log()
    log.echo(text)
    ran = _runner_commands(stream.getvalue())
    assert [n for n, _, _ in ran] == (["stop-commands"] if wrapped else [])
    assert text.splitlines()[-1] in stream.getvalue().splitlines()


def test_annotation_levels_are_checked() -> None:
    log, _ = _log()
    with pytest.raises(ValueError):
        log.annotation("fatal", "no such level")


# --- $GITHUB_OUTPUT ------------------------------------------------------------------------

VALUES = {
    "outcome": "applied",
    "empty": "",
    "multi-line": "line 1\nline 2",
    "trailing-newline": "x\n",
    "leading-blank": "\nx",
    "equals": "a=b<<c",
    "looks-like-a-delimiter": "EOF\nghadelimiter_x\n",
}


def test_outputs_round_trip_through_the_runners_parser(tmp_path: Path) -> None:
    path = tmp_path / "set_output"
    workflow.write_outputs(path, VALUES)
    assert _runner_outputs(path.read_text(encoding="utf-8")) == VALUES


def test_outputs_append_to_what_is_already_there(tmp_path: Path) -> None:
    path = tmp_path / "set_output"
    path.write_text("earlier=1\n", encoding="utf-8")
    workflow.write_outputs(path, {"outcome": "drift"})
    workflow.write_outputs(path, {"report-path": ".hmig/reports/prod-plan.json"})
    assert _runner_outputs(path.read_text(encoding="utf-8")) == {
        "earlier": "1",
        "outcome": "drift",
        "report-path": ".hmig/reports/prod-plan.json",
    }


def test_a_delimiter_found_in_the_value_is_replaced() -> None:
    tokens = iter(["DELIM1", "DELIM2"])
    text = workflow.format_outputs({"sql": "a\nDELIM1\nb"}, delimiter=lambda: next(tokens))
    assert text == "sql<<DELIM2\na\nDELIM1\nb\nDELIM2\n"
    assert _runner_outputs(text) == {"sql": "a\nDELIM1\nb"}


def test_default_delimiters_are_random_per_value() -> None:
    text = workflow.format_outputs({"a": "1", "b": "2"})
    delimiters = re.findall(r"^[ab]<<(.+)$", text, flags=re.MULTILINE)
    assert len(set(delimiters)) == 2
    assert all(d.startswith("ghadelimiter_") for d in delimiters)


@pytest.mark.parametrize("name", ["", "a=b", "a<<b", "a\nb"])
def test_an_output_name_the_runner_would_misread_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="output name"):
        workflow.format_outputs({name: "x"})


# --- $GITHUB_STEP_SUMMARY -----------------------------------------------------------------


def test_a_summary_within_the_limit_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    first = workflow.append_summary(path, "# Plan\n\nNothing to do")
    second = workflow.append_summary(path, "## Drift\n")
    assert path.read_text(encoding="utf-8") == "# Plan\n\nNothing to do\n## Drift\n"
    assert (first.truncated, second.truncated) == (False, False)
    assert first.written_bytes + second.written_bytes == path.stat().st_size


def test_a_summary_over_the_limit_is_cut_at_a_line_and_closes_its_fence(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    path.write_text("# hmig\n", encoding="utf-8")  # an earlier write of the same step counts
    lines = [f"INSERT INTO t VALUES ({i}, 'é€😀');" for i in range(40_000)]
    markdown = (
        "<details><summary>SQL</summary>\n\n```sql\n" + "\n".join(lines) + "\n```\n</details>\n"
    )
    written = workflow.append_summary(path, markdown)
    data = path.read_bytes()
    assert written.truncated
    assert len(data) <= workflow.SUMMARY_LIMIT_BYTES
    assert len(data) > workflow.SUMMARY_LIMIT_BYTES - 1024  # it used the room it had
    text = data.decode("utf-8")  # never cut inside a character
    body = text.removeprefix("# hmig\n")
    kept = [line for line in body.splitlines() if line.startswith("INSERT")]
    assert kept == lines[: len(kept)]  # whole lines, in order, none altered
    assert sum(line.startswith("```") for line in body.splitlines()) % 2 == 0
    assert body.count("<details>") == body.count("</details>")
    assert "The rest of this summary was cut" in body


def test_nothing_follows_the_note_of_a_cut_summary(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    workflow.append_summary(path, "x" * 80 + "\n" + "y" * 500, limit_bytes=400)
    size = path.stat().st_size
    again = workflow.append_summary(path, "more", limit_bytes=400)
    assert size <= 400
    assert (again.truncated, again.written_bytes, path.stat().st_size) == (True, 0, size)


def test_a_summary_with_no_room_left_gets_nothing(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    path.write_text("z" * 390, encoding="utf-8")
    written = workflow.append_summary(path, "more than ten bytes", limit_bytes=400)
    assert (written.truncated, written.written_bytes, path.stat().st_size) == (True, 0, 390)


def test_the_note_can_name_where_the_full_report_is(tmp_path: Path) -> None:
    path = tmp_path / "step_summary"
    note = "\n_Cut: the full report is the `hmig-report` artifact._\n"
    lines = "\n".join(itertools.repeat("row", 1000))
    workflow.append_summary(path, lines, limit_bytes=2000, note=note)
    assert path.read_text(encoding="utf-8").endswith(note)
