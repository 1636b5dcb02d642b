"""Workflow commands and environment files, written the way the runner parses them.

The runner runs any log line that starts with `::` (after trimming leading whitespace), on stdout
or stderr (actions/runner `ActionCommand.TryParseV2`, github-actions.md §2.1). This module is the
one place that writes such lines: escaped data and properties, `::add-mask::`, `::group::`,
annotations, and text that must not run as a command (migration SQL) wrapped in
`::stop-commands::<random>` … `::<random>::`. It also appends `$GITHUB_OUTPUT` with a random
heredoc delimiter per value and `$GITHUB_STEP_SUMMARY` within the 1 MiB a step may add. It takes
the stream and the paths from the caller: it must not read `os.environ`, call the network, or
decide which findings matter (the caller ranks them and keeps GitHub's 10 per level).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

# The runner stores at most 10 annotations of each kind per step (`_maxCountPerIssueType`) and
# cuts messages at 4096 characters (`_maxIssueMessageLength`), ExecutionContext.cs.
ANNOTATION_LIMIT = 10
MESSAGE_LIMIT = 4096
# "each step is restricted to a maximum size of 1MiB" (workflow-commands docs; the runner's
# AttachmentSizeLimit = 1024 * 1024): past it the whole summary of the step is dropped.
SUMMARY_LIMIT_BYTES = 1024 * 1024
_TRUNCATED_NOTE = (
    "\n> [!WARNING]\n> The rest of this summary was cut: GitHub keeps at most 1 MiB of summary "
    "per step.\n"
)
_FENCE = "```\n"
_DETAILS = "</details>\n"
_MAX_DETAILS = 4  # closers reserved for open <details>: a bound, so the reserve is known
# toolkit `escapeData` / `escapeProperty` (packages/core/src/command.ts); `%` goes first so the
# escapes themselves are not escaped again.
_DATA_ESCAPES = (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"))
_PROPERTY_ESCAPES = (*_DATA_ESCAPES, (":", "%3A"), (",", "%2C"))


class Level(StrEnum):
    """The three annotation kinds; each has its own limit of 10 per step."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One `::error` / `::warning` / `::notice`; lines and columns count from 1."""

    level: Level
    message: str
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    col: int | None = None
    end_column: int | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryWrite:
    """What `append_summary` wrote, so the caller can say the summary was cut."""

    written_bytes: int
    truncated: bool


def escape_data(text: str) -> str:
    """Escape a command's message: `%`, CR and LF (toolkit `escapeData`)."""
    for raw, escaped in _DATA_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def escape_property(text: str) -> str:
    """Escape a property value: as data, plus `:` and `,` (toolkit `escapeProperty`)."""
    for raw, escaped in _PROPERTY_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def format_command(name: str, data: str = "", properties: Mapping[str, str] | None = None) -> str:
    """`::name k=v,k2=v2::data`, every part escaped; one line, without its newline."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in (properties or {}).items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(data)}"


def format_annotation(annotation: Annotation) -> str:
    """The command line for one annotation, its message cut to what GitHub stores."""
    message = annotation.message
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return format_command(annotation.level.value, message, _annotation_properties(annotation))


def _annotation_properties(annotation: Annotation) -> dict[str, str]:
    # The property names are the runner's (`IssueCommandExtension`): camelCase endLine/endColumn.
    candidates = {
        "file": annotation.file,
        "line": annotation.line,
        "endLine": annotation.end_line,
        "col": annotation.col,
        "endColumn": annotation.end_column,
        "title": annotation.title,
    }
    return {key: str(value) for key, value in candidates.items() if value is not None}


def _random_token() -> str:
    # Must be unpredictable to the migration author, non-empty, and no command name
    # (workflow-commands docs, "Stopping and starting workflow commands"); hex never is one.
    return secrets.token_hex(16)


class WorkflowLog:
    """Writes workflow commands and plain text to one stream (stdout in the Action)."""

    def __init__(self, stream: TextIO, *, token: Callable[[], str] = _random_token) -> None:
        self._stream = stream
        self._token = token

    def _line(self, text: str) -> None:
        # Flush every line: Python block-buffers a pipe, and commands must interleave with
        # whatever the runner reads from stderr in order (github-actions.md §1.5).
        self._stream.write(text + "\n")
        self._stream.flush()

    def add_mask(self, value: str) -> None:
        """Mask a secret in every later line of the log; the runner masks each line of it too."""
        if value.strip():  # an empty mask only makes the runner warn
            self._line(format_command("add-mask", value))

    def annotation(
        self,
        level: Level | str,
        message: str,
        *,
        title: str | None = None,
        file: str | None = None,
        line: int | None = None,
        end_line: int | None = None,
        col: int | None = None,
        end_column: int | None = None,
    ) -> None:
        """Emit one annotation; GitHub keeps 10 of each level per step, the caller picks which."""
        annotation = Annotation(
            level=Level(level),
            message=message,
            file=file,
            line=line,
            end_line=end_line,
            col=col,
            end_column=end_column,
            title=title,
        )
        self._line(format_annotation(annotation))

    def debug(self, message: str) -> None:
        """A line shown only when the `ACTIONS_STEP_DEBUG` secret is true."""
        self._line(format_command("debug", message))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A foldable log section; closed even when the body raises."""
        self._line(format_command("group", title))
        try:
            yield
        finally:
            self._line(format_command("endgroup"))

    @contextmanager
    def stop_commands(self) -> Iterator[None]:
        """No line written inside runs as a command; a fresh random token each time."""
        token = self._token()
        self._line(format_command("stop-commands", token))
        try:
            yield
        finally:
            self._line(f"::{token}::")

    def verbatim(self, text: str) -> None:
        """Print untrusted text (migration SQL, server errors); no line of it runs as a command."""
        with self.stop_commands():
            for line in text.splitlines():
                self._line(line)

    def echo(self, text: str) -> None:
        """Print text; wrapped in stop-commands only when a line could be read as a command."""
        lines = text.splitlines()
        if any(_looks_like_command(line) for line in lines):
            self.verbatim(text)
            return
        for line in lines:
            self._line(line)


def _looks_like_command(line: str) -> bool:
    # The runner trims leading whitespace, then accepts `::cmd` and the legacy `##[cmd` form.
    stripped = line.lstrip()
    return stripped.startswith("::") or stripped.startswith("##[")


def _delimiter() -> str:
    # The toolkit's own form (packages/core/src/file-command.ts, `ghadelimiter_${uuid}`).
    return f"ghadelimiter_{uuid.uuid4()}"


def format_outputs(outputs: Mapping[str, str], *, delimiter: Callable[[], str] = _delimiter) -> str:
    """The `$GITHUB_OUTPUT` text: `name<<DELIM`, the value, `DELIM`, for every output.

    Always the heredoc form, as the toolkit writes it: a value may hold `=`, newlines or anything
    else. The runner reads the value up to the line equal to the delimiter and drops the newline
    before it (FileCommandManager.cs), so any value round-trips exactly.
    """
    parts: list[str] = []
    for name, value in outputs.items():
        _check_output_name(name)
        token = delimiter()
        while token in value:  # "make sure the delimiter won't occur … within the value"
            token = delimiter()
        parts.append(f"{name}<<{token}\n{value}\n{token}\n")
    return "".join(parts)


def _check_output_name(name: str) -> None:
    # The runner splits a line on the first `=` or `<<`, whichever comes first.
    if not name or "=" in name or "<<" in name or "\n" in name or "\r" in name:
        raise ValueError(f"invalid output name {name!r}")


def write_outputs(
    path: Path, outputs: Mapping[str, str], *, delimiter: Callable[[], str] = _delimiter
) -> None:
    """Append the outputs to `$GITHUB_OUTPUT` (UTF-8, LF line ends)."""
    text = format_outputs(outputs, delimiter=delimiter)
    with path.open("a", encoding="utf-8", newline="\n") as file:
        file.write(text)


def append_summary(
    path: Path,
    markdown: str,
    *,
    limit_bytes: int = SUMMARY_LIMIT_BYTES,
    note: str = _TRUNCATED_NOTE,
) -> SummaryWrite:
    """Append Markdown to `$GITHUB_STEP_SUMMARY`, never past the step's limit.

    Over the limit GitHub drops the step's whole summary and adds an error annotation
    (workflow-commands docs); cutting at a line boundary, closing an open code fence and
    `<details>`, and appending `note` keeps everything before the cut.
    """
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    used = path.stat().st_size if path.exists() else 0
    if used and _ends_with(path, note):  # cut before: nothing may follow the note
        return SummaryWrite(written_bytes=0, truncated=True)
    room = limit_bytes - used
    data = text.encode("utf-8")
    truncated = len(data) > room
    if truncated:
        data = _cut(text, room=room, note=note).encode("utf-8")
    with path.open("ab") as file:
        file.write(data)
    return SummaryWrite(written_bytes=len(data), truncated=truncated)


def _ends_with(path: Path, note: str) -> bool:
    tail = note.encode("utf-8")
    with path.open("rb") as file:
        file.seek(max(path.stat().st_size - len(tail), 0))
        return file.read() == tail


def _cut(text: str, *, room: int, note: str) -> str:
    """The longest prefix of whole lines that, with its closing tags and the note, fits."""
    reserve = len(note.encode("utf-8")) + len(_FENCE) + len(_DETAILS) * _MAX_DETAILS
    budget = room - reserve
    if budget <= 0:  # no room even for the note: add nothing
        return ""
    head = text.encode("utf-8")[:budget]
    keep = head[: head.rfind(b"\n") + 1].decode("utf-8")
    return keep + _closers(keep) + note


def _closers(markdown: str) -> str:
    """Close a code fence and `<details>` blocks left open by a cut."""
    closing = ""
    fences = sum(1 for line in markdown.splitlines() if line.lstrip().startswith("```"))
    if fences % 2:
        closing += _FENCE
    open_details = markdown.count("<details") - markdown.count("</details>")
    closing += _DETAILS * max(0, min(open_details, _MAX_DETAILS))
    return closing
