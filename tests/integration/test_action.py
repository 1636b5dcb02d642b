"""The Action end to end, run as the runner runs it, against real PostgreSQL and a fake GitHub.

`hmig-action` is started as a process with every declared input as `INPUT_<NAME>` (hyphens kept,
empty when unset), the `GITHUB_*` variables, and real files for `GITHUB_OUTPUT`,
`GITHUB_STEP_SUMMARY` and `GITHUB_EVENT_PATH` (github-actions.md §1.3 and §1.4).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hmig.settings import ACTION_INPUTS
from tests.conftest import Project
from tests.fakegithub import FakeGitHub, Fault

ACTION = Path(sys.executable).parent / "hmig-action"
REPO = "org/app"
HEAD = "a" * 40
MERGE = "b" * 40
TOKEN = "ghs_faketoken1234567890"
MARKER = re.compile(r"<!--\s*hmig")


@dataclass
class ActionRun:
    """A finished `hmig-action` process and the files the runner would read back."""

    code: int
    out: str
    err: str
    outputs: dict[str, str]
    summary: str
    workspace: Path

    def report(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(
            (self.workspace / self.outputs["report-path"]).read_text(encoding="utf-8")
        )
        return loaded

    def annotations(self, level: str) -> list[tuple[dict[str, str], str]]:
        """`::level k=v,…::message` lines, outside stop-commands blocks, decoded."""
        found: list[tuple[dict[str, str], str]] = []
        for line in _live_command_lines(self.out):
            match = re.match(rf"::{level}(?: (?P<props>[^:]*))?::(?P<msg>.*)", line)
            if match:
                props = dict(
                    _unescape(p).split("=", 1) for p in (match["props"] or "").split(",") if p
                )
                found.append(({k: _unescape(v) for k, v in props.items()}, _unescape(match["msg"])))
        return found


def _unescape(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def _live_command_lines(log: str) -> Iterator[str]:
    """What the runner would execute: lines starting `::`, skipping stop-commands blocks."""
    stopped: str | None = None
    for raw in log.splitlines():
        line = raw.lstrip()
        if stopped is not None:
            if line == f"::{stopped}::":
                stopped = None
            continue
        if line.startswith("::stop-commands::"):
            stopped = line.removeprefix("::stop-commands::")
            continue
        if line.startswith("::"):
            yield line


def parse_output_file(text: str) -> dict[str, str]:
    """`$GITHUB_OUTPUT` as the runner parses it (github-actions.md §2.5)."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            else:
                raise AssertionError(f"no closing delimiter for {name}")
            outputs[name] = "\n".join(value)
        else:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_token(TOKEN, login="github-actions[bot]", type="Bot", can_write=True)
        gh.add_token(
            "ghs_readonly1234567890", login="github-actions[bot]", type="Bot", can_write=False
        )
        gh.add_pull(REPO, 7, head_sha=HEAD, merge_commit_sha=MERGE, state="open")
        yield gh


def run_action(
    project: Project,
    github: FakeGitHub,
    *,
    event_name: str = "pull_request",
    event: dict[str, Any] | None = None,
    sha: str = MERGE,
    token: str = TOKEN,
    timeout: float = 180,
    **inputs: str,
) -> ActionRun:
    """Start `hmig-action` as the runner does, in the project's folder as the workspace."""
    runner = project.root.parent / "runner"
    runner.mkdir(exist_ok=True)
    output, summary, event_file = (runner / n for n in ("output", "summary", "event.json"))
    output.write_text("")
    summary.write_text("")
    event_file.write_text(json.dumps(event if event is not None else pr_event()))
    env = project.process_env(
        {
            **{f"INPUT_{name.upper()}": "" for name in ACTION_INPUTS},
            "INPUT_GITHUB-TOKEN": token,
            "INPUT_ENVIRONMENT": "test",
            **{f"INPUT_{k.replace('_', '-').upper()}": v for k, v in inputs.items()},
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SHA": sha,
            "GITHUB_RUN_ID": "1234",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": github.url,
            "GITHUB_WORKSPACE": str(project.root),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
    )
    completed = subprocess.run(
        [str(ACTION)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return ActionRun(
        code=completed.returncode,
        out=completed.stdout,
        err=completed.stderr,
        outputs=parse_output_file(output.read_text(encoding="utf-8")),
        summary=summary.read_text(encoding="utf-8"),
        workspace=project.root,
    )


def pr_event(number: int = 7, *, head_repo: str = REPO, sha: str = HEAD) -> dict[str, Any]:
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": sha, "repo": {"full_name": head_repo}},
            "base": {"repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO},
    }


def push_event(sha: str = MERGE) -> dict[str, Any]:
    return {"after": sha, "ref": "refs/heads/main", "repository": {"full_name": REPO}}


def hmig_comments(github: FakeGitHub, number: int = 7) -> list[dict[str, Any]]:
    return [c for c in github.comments(REPO, number) if MARKER.search(c["body"])]


# --- pull request plan ------------------------------------------------------------------------


def test_pr_plan__one_comment_with_the_sql__outputs_and_summary(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run = run_action(project, github, command="plan")
    assert run.code == 0, run.out + run.err
    [comment] = hmig_comments(github)
    assert "CREATE TABLE patients" in comment["body"]
    assert comment["user"]["login"] == "github-actions[bot]"
    assert run.outputs["outcome"] == "ok"
    assert run.outputs["pending-count"] == "1"
    assert run.outputs["applied-count"] == "0"
    assert run.outputs["drift"] == "false"
    assert run.outputs["comment-url"] == comment["html_url"]
    assert "001_patients" in run.summary
    report = run.report()
    assert report["context"] == {
        "event": "pull_request",
        "repository": REPO,
        "pull_request": 7,
        "sha": HEAD,
        "run_url": "https://github.com/org/app/actions/runs/1234",
    }
    assert project.database is not None
    assert "patients" not in project.database.tables()


def test_a_second_plan_updates_the_same_comment(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    first = run_action(project, github, command="plan")
    project.write("002_wards.sql", "CREATE TABLE wards (id bigint PRIMARY KEY);\n")
    second = run_action(project, github, command="plan")
    assert (first.code, second.code) == (0, 0)
    [comment] = hmig_comments(github)
    assert "wards" in comment["body"]
    assert second.outputs["comment-url"] == first.outputs["comment-url"]
    writes = [r for r in github.requests if r.method in ("POST", "PATCH")]
    assert [r.method for r in writes] == ["POST", "PATCH"]


def test_an_unchanged_plan_does_not_write_again(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run_action(project, github, command="plan")
    run_action(project, github, command="plan")
    writes = [r for r in github.requests if r.method in ("POST", "PATCH")]
    assert [r.method for r in writes] == ["POST"]


def test_nothing_pending_on_change_creates_no_comment(project: Project, github: FakeGitHub) -> None:
    run = run_action(project, github, command="plan")
    assert run.code == 0, run.out + run.err
    assert run.outputs["outcome"] == "nothing-to-do"
    assert hmig_comments(github) == []
    assert run.outputs["comment-url"] == ""


def test_comment_never_posts_nothing(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run = run_action(project, github, command="plan", comment="never")
    assert run.code == 0
    assert [r for r in github.requests if r.method != "GET"] == []
    assert "patients" in run.summary


def test_a_long_pr_is_paginated_and_never_gets_a_duplicate(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    for i in range(60):
        github.add_comment(REPO, 7, f"review note {i}", login="reviewer", type="User")
    run_action(project, github, command="plan")
    for i in range(90):
        github.add_comment(REPO, 7, f"later note {i}", login="reviewer", type="User")
    project.write("002_wards.sql", "CREATE TABLE wards (id bigint PRIMARY KEY);\n")
    run = run_action(project, github, command="plan")
    assert run.code == 0
    [comment] = hmig_comments(github)
    assert "wards" in comment["body"]
    assert len(github.comments(REPO, 7)) == 151


def test_another_tools_comment_with_our_marker_is_never_touched(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run_action(project, github, command="plan", comment="never")
    forged = "<!-- hmig:comment environment=test -->\nquoting hmig"
    other = github.add_comment(REPO, 7, forged, login="other-bot[bot]", type="Bot")
    run = run_action(project, github, command="plan")
    assert run.code == 0
    bodies = {c["id"]: c["body"] for c in github.comments(REPO, 7)}
    assert bodies[other] == forged
    assert len(bodies) == 2


# --- apply and its results -------------------------------------------------------------------


def test_apply_on_push_reports_back_on_the_merged_pr(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run_action(project, github, command="plan")
    run = run_action(project, github, command="apply", event_name="push", event=push_event())
    assert run.code == 0, run.out + run.err
    assert run.outputs["applied-count"] == "1"
    assert run.outputs["pending-count"] == "1"
    [comment] = hmig_comments(github)
    assert "001_patients" in comment["body"]
    assert run.outputs["comment-url"] == comment["html_url"]
    assert project.database is not None
    assert "patients" in project.database.tables()
    assert any(r.path.endswith(f"/commits/{MERGE}/pulls") for r in github.requests)


def test_a_failing_migration_exits_1_with_an_annotation_on_its_line(
    project: Project, github: FakeGitHub
) -> None:
    project.write(
        "001_bad.sql",
        "CREATE TABLE ok (id int);\n\nCREATE TABLE broken (id int REFERENCES nowhere (id));\n",
    )
    run = run_action(project, github, command="apply", event_name="push", event=push_event())
    assert run.code == 1, run.out + run.err
    assert run.outputs["outcome"] == "failed"
    [(props, message)] = run.annotations("error")
    assert props["file"] == "migrations/001_bad.sql"
    assert props["line"] == "3"
    assert "nowhere" in message
    assert project.database is not None
    assert project.database.history() == []


def test_a_failure_at_commit_is_annotated_as_the_commit_with_no_line(
    project: Project, github: FakeGitHub
) -> None:
    # A deferred foreign key fails at COMMIT: no statement, so no line to point at.
    project.write(
        "001_orphan.sql",
        "CREATE TABLE ward (id int PRIMARY KEY);\n"
        "CREATE TABLE bed (ward_id int REFERENCES ward DEFERRABLE INITIALLY DEFERRED);\n"
        "INSERT INTO bed VALUES (42);\n",
    )
    run = run_action(project, github, command="apply", event_name="push", event=push_event())
    assert run.code == 1, run.out + run.err
    [(props, message)] = run.annotations("error")
    assert props["title"] == "COMMIT failed after migration 001_orphan"
    assert props["file"] == "migrations/001_orphan.sql"
    assert "line" not in props
    assert "bed_ward_id_fkey" in message


# --- forks, tokens and faults ----------------------------------------------------------------


def test_a_fork_pr_read_only_token_degrades_to_a_warning(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run = run_action(
        project,
        github,
        command="plan",
        token="ghs_readonly1234567890",
        event=pr_event(head_repo="someone/app-fork"),
    )
    assert run.code == 0, run.out + run.err
    assert run.outputs["outcome"] == "ok"
    assert hmig_comments(github) == []
    warnings = [m for _, m in run.annotations("warning")]
    assert any("comment" in w for w in warnings), warnings
    assert "patients" in run.summary


def test_pull_request_target_is_refused(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run = run_action(project, github, command="plan", event_name="pull_request_target")
    assert run.code == 2
    assert run.outputs["outcome"] == "refused"
    [(_, message)] = run.annotations("error")
    assert "pull_request_target" in message
    assert "workflow_run" in message or "comment" in message


def test_server_errors_are_retried_and_the_comment_lands_once(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    github.inject(Fault(kind="status", status=502, method="POST", times=2))
    run = run_action(project, github, command="plan")
    assert run.code == 0, run.out + run.err
    assert len(hmig_comments(github)) == 1


def test_github_down_never_changes_the_migration_result(
    project: Project, github: FakeGitHub
) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    github.inject(Fault(kind="status", status=500, times=100))
    run = run_action(project, github, command="apply", event_name="push", event=push_event())
    assert run.code == 0, run.out + run.err
    assert run.outputs["applied-count"] == "1"
    assert any("comment" in m for _, m in run.annotations("warning"))


# --- size, secrets, workflow commands ---------------------------------------------------------


def test_a_200_kb_migration_fits_the_comment_limit(project: Project, github: FakeGitHub) -> None:
    filler = "x" * 40
    rows = ",\n".join(f"({i}, 'ward {i:06d} — {filler}')" for i in range(3000))
    project.write(
        "001_wards.sql",
        f"CREATE TABLE wards (id int PRIMARY KEY, name text);\nINSERT INTO wards VALUES\n{rows};\n",
    )
    assert (project.migrations / "001_wards.sql").stat().st_size > 200_000
    run = run_action(project, github, command="plan")
    assert run.code == 0, run.out + run.err
    assert len(hmig_comments(github)) == 1, run.out[-4000:]
    [comment] = hmig_comments(github)
    assert len(comment["body"]) <= 65_536
    assert "ward 002999" in run.summary


def test_sql_cannot_run_workflow_commands_and_secrets_are_masked_first(
    project: Project, github: FakeGitHub
) -> None:
    assert project.database is not None
    url = project.database.url
    project.write(
        "001_evil.sql",
        "CREATE TABLE t (id int);\n-- ::error file=x,line=1::forged\n"
        "COMMENT ON TABLE t IS '\n::add-mask::visible\n';\n",
    )
    run = run_action(project, github, command="plan", database_url=url)
    assert run.code == 0, run.out + run.err
    assert run.annotations("error") == []
    live = list(_live_command_lines(run.out))
    assert not any("forged" in line or "visible" in line for line in live)
    first = run.out.lstrip().splitlines()[0]
    assert first.startswith("::add-mask::")
    # The token appears once: in the mask command itself, which the runner does not print.
    unmasked = [line for line in run.out.splitlines() if not line.startswith("::add-mask::")]
    assert TOKEN not in "\n".join(unmasked) + run.err + run.summary
    assert f"::add-mask::{TOKEN}" in run.out
    assert TOKEN not in json.dumps(run.report())


# --- the fork pattern: publish a report made by another run ---------------------------------


def workflow_run_event(head_sha: str = HEAD) -> dict[str, Any]:
    return {
        "action": "completed",
        "workflow_run": {
            "event": "pull_request",
            "head_sha": head_sha,
            "pull_requests": [],  # empty for fork PRs (github-actions.md §3.7)
            "head_repository": {"full_name": "someone/app-fork"},
            "repository": {"full_name": REPO},
        },
        "repository": {"full_name": REPO},
    }


def _plan_report(project: Project, github: FakeGitHub) -> Path:
    """What the fork's `pull_request` job uploads: its report, made without commenting."""
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    plan = run_action(project, github, command="plan", comment="never")
    assert plan.code == 0, plan.out + plan.err
    artifact = project.root / "hmig-report"
    artifact.mkdir()
    target = artifact / "test-plan.json"
    target.write_text((project.root / plan.outputs["report-path"]).read_text())
    return target


def test_comment_command_publishes_an_uploaded_report(project: Project, github: FakeGitHub) -> None:
    report = _plan_report(project, github)
    run = run_action(
        project,
        github,
        command="comment",
        args=f"--report {report.relative_to(project.root)}",
        event_name="workflow_run",
        event=workflow_run_event(),
        sha="c" * 40,
    )
    assert run.code == 0, run.out + run.err
    [comment] = hmig_comments(github)
    assert "CREATE TABLE patients" in comment["body"]
    assert run.outputs["comment-url"] == comment["html_url"]


def test_comment_command_refuses_a_report_for_another_commit(
    project: Project, github: FakeGitHub
) -> None:
    report = _plan_report(project, github)
    github.add_pull(REPO, 8, head_sha="d" * 40, state="open")
    forged = json.loads(report.read_text())
    forged["context"]["pull_request"] = 8
    report.write_text(json.dumps(forged))
    run = run_action(
        project,
        github,
        command="comment",
        args=f"--report {report.relative_to(project.root)}",
        event_name="workflow_run",
        event=workflow_run_event(),
    )
    assert run.code == 0, run.out + run.err
    assert hmig_comments(github, 8) == [] and hmig_comments(github, 7) == []
    assert any("not posted" in m for _, m in run.annotations("warning"))


def test_comment_command_rejects_a_document_that_is_not_a_report(
    project: Project, github: FakeGitHub
) -> None:
    bogus = project.root / "bogus.json"
    bogus.write_text(json.dumps({"outcome": "ok", "pending": "<script>"}))
    run = run_action(
        project,
        github,
        command="comment",
        args="--report bogus.json",
        event_name="workflow_run",
        event=workflow_run_event(),
    )
    assert run.code == 2, run.out
    [(_, message)] = run.annotations("error")
    assert "bogus.json is not an hmig report" in message
    assert [r for r in github.requests if r.method != "GET"] == []


# --- $GITHUB_OUTPUT, byte for byte -----------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "action"


def test_github_output_golden(project: Project, github: FakeGitHub) -> None:
    project.write("001_patients.sql", "CREATE TABLE patients (id bigint PRIMARY KEY);\n")
    run = run_action(project, github, command="plan")
    assert run.code == 0, run.out + run.err
    text = (project.root.parent / "runner" / "output").read_text(encoding="utf-8")
    delimiters = set(re.findall(r"<<(ghadelimiter_[0-9a-f-]+)\n", text))
    assert len(delimiters) == 7, "every value has its own random delimiter"
    for delimiter in delimiters:
        text = text.replace(delimiter, "DELIMITER")
    text = text.replace(github.url, "FAKE_GITHUB")
    golden = GOLDEN / "plan-github-output.txt"
    if os.environ.get("HMIG_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
