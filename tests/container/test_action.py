"""`hmig-action` inside the image, started as GitHub's runner starts a Docker action.

The runner sets every input declared in action.yml as `INPUT_<NAME>` (hyphens kept), from the
step's `with:` or else the input's default; the `GITHUB_*` variables with paths inside the
container; and files for `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY` (in /github/file_commands) and
`GITHUB_EVENT_PATH` (in /github/workflow) (github-actions.md §1.3, §1.4). GitHub is the fake on
loopback; the database the local PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Database
from tests.container.conftest import RUNNER_UID, Container, RunnerDirs, manifest_order
from tests.fakegithub import FakeGitHub

REPOSITORY = "org/hospital"
HEAD = "c" * 40
MERGE = "d" * 40
TOKEN = "ghs_containertest0123456789"
PASSWORD = "s3cret-in-the-url"  # trust authentication ignores it; the Action must mask it
# The runner's own user on GitHub-hosted runners, who owns the checkout and runs every later step
# (actions/upload-artifact included); the Action's container runs as root (§1.6).


@dataclass(frozen=True)
class ActionRun:
    """A finished Action step and what the runner reads back."""

    code: int
    log: str
    outputs: dict[str, str]
    summary: str


def runner_inputs(with_: Mapping[str, str], *, token: str) -> dict[str, str]:
    """`INPUT_*` as the runner computes them from action.yml's defaults and the step's `with:`."""
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    inputs: dict[str, str] = {}
    for name, spec in action["inputs"].items():
        value = str(with_.get(name, spec.get("default", "")))
        inputs[f"INPUT_{name.replace(' ', '_').upper()}"] = value.replace(
            "${{ github.token }}", token
        )
    unknown = set(with_) - set(action["inputs"])
    assert not unknown, f"action.yml declares no input {unknown}"
    return inputs


def parse_outputs(text: str) -> dict[str, str]:
    """`$GITHUB_OUTPUT`: `name=value` lines and `name<<DELIMITER` blocks (§2.5)."""
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            else:
                raise AssertionError(f"output {name}: no closing {delimiter}")
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def run_step(
    container: Container,
    runner: RunnerDirs,
    github: FakeGitHub,
    *,
    event_name: str,
    event: Mapping[str, Any],
    sha: str,
    with_: Mapping[str, str],
) -> ActionRun:
    """One step `uses: org/hmig-action` with `with_`, as the runner would run it."""
    step = uuid.uuid4()
    output = f"/github/file_commands/set_output_{step}"
    summary = f"/github/file_commands/step_summary_{step}"
    for path in (output, summary):
        runner.host(path).write_text("")
    runner.host("/github/workflow/event.json").write_text(json.dumps(event))
    env = {
        **runner_inputs(with_, token=TOKEN),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": "/github/workflow/event.json",
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SHA": sha,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": github.url,
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_OUTPUT": output,
        "GITHUB_STEP_SUMMARY": summary,
        "RUNNER_TEMP": "/github/runner_temp",
    }
    ran = container.run(None, runner=runner, env=env)
    return ActionRun(
        code=ran.code,
        log=ran.text,
        outputs=parse_outputs(runner.host(output).read_text(encoding="utf-8")),
        summary=runner.host(summary).read_text(encoding="utf-8"),
    )


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_token(TOKEN, login="github-actions[bot]", type="Bot", can_write=True)
        gh.add_pull(REPOSITORY, 7, head_sha=HEAD, merge_commit_sha=MERGE, state="open")
        yield gh


def unmasked(log: str) -> list[str]:
    """Lines showing the password other than the `::add-mask::` that hides it from then on."""
    return [
        line
        for line in log.splitlines()
        if PASSWORD in line and not line.lstrip().startswith("::add-mask::")
    ]


def readable_by_the_runner(path: Path) -> bool:
    """Whether a later step, running as the runner's user, can read `path`."""
    probe = subprocess.run(
        ["test", "-r", str(path)], user=RUNNER_UID, group=RUNNER_UID, extra_groups=[], check=False
    )
    return probe.returncode == 0


def _url(database: Database) -> str:
    return database.server.url_for(database.name, password=PASSWORD)


def test_plan_on_a_pull_request_comments_and_sets_outputs(
    container: Container,
    runner: RunnerDirs,
    hospital: Path,
    local_database: Database,
    github: FakeGitHub,
) -> None:
    event = {
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": HEAD, "repo": {"full_name": REPOSITORY}},
            "base": {"repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }
    step = run_step(
        container,
        runner,
        github,
        event_name="pull_request",
        event=event,
        sha=MERGE,
        with_={"environment": "staging", "database-url": _url(local_database)},
    )
    assert step.code == 0, step.log
    order = manifest_order(hospital)
    assert step.outputs["pending-count"] == str(len(order))
    assert (step.outputs["applied-count"], step.outputs["drift"]) == ("0", "false")

    (comment,) = github.comments(REPOSITORY, 7)
    assert step.outputs["comment-url"] == comment["html_url"]
    assert comment["user"]["login"] == "github-actions[bot]"
    assert all(name in comment["body"] for name in order)
    assert order[0] in step.summary

    report_path = hospital / step.outputs["report-path"]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["command"], report["environment"]) == ("plan", "staging")
    assert readable_by_the_runner(report_path)  # README: upload it with actions/upload-artifact
    assert local_database.tables() == set()  # a plan changes nothing
    assert unmasked(step.log) == []
    for text in (step.summary, comment["body"], json.dumps(report)):
        assert PASSWORD not in text


def test_apply_then_drift_on_push(
    container: Container,
    runner: RunnerDirs,
    hospital: Path,
    local_database: Database,
    github: FakeGitHub,
) -> None:
    """A push to main: apply to the protected environment, then a drift check finds nothing."""
    push = {"after": MERGE, "ref": "refs/heads/main", "repository": {"full_name": REPOSITORY}}
    common = {"environment": "production", "database-url": _url(local_database)}
    applied = run_step(
        container,
        runner,
        github,
        event_name="push",
        event=push,
        sha=MERGE,
        with_={**common, "command": "apply", "comment": "never"},
    )
    assert applied.code == 0, applied.log
    order = manifest_order(hospital)
    assert applied.outputs["outcome"] == "ok"
    assert applied.outputs["applied-count"] == str(len(order))
    assert local_database.history() == order
    backup = hospital / applied.outputs["backup-path"]
    assert not Path(applied.outputs["backup-path"]).is_absolute()
    assert backup.is_file() and backup.stat().st_size > 0
    assert github.comments(REPOSITORY, 7) == []  # comment: never

    drift = run_step(
        container,
        runner,
        github,
        event_name="push",
        event=push,
        sha=MERGE,
        with_={**common, "command": "drift", "comment": "never"},
    )
    assert drift.code == 0, drift.log
    assert (drift.outputs["drift"], drift.outputs["pending-count"]) == ("false", "0")
    assert unmasked(applied.log + drift.log) == []
    assert PASSWORD not in applied.summary + drift.summary


def test_the_backup_is_readable_by_the_step_that_uploads_it(
    container: Container,
    runner: RunnerDirs,
    hospital: Path,
    local_database: Database,
    github: FakeGitHub,
) -> None:
    applied = run_step(
        container,
        runner,
        github,
        event_name="workflow_dispatch",
        event={"repository": {"full_name": REPOSITORY}},
        sha=MERGE,
        with_={
            "command": "apply",
            "environment": "production",
            "database-url": _url(local_database),
            "comment": "never",
        },
    )
    assert applied.code == 0, applied.log
    assert readable_by_the_runner(hospital / applied.outputs["backup-path"])
