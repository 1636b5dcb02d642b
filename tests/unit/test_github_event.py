"""Event payloads (`$GITHUB_EVENT_PATH`) → `Event`, for every event the Action runs on.

The payloads are trimmed copies of GitHub's webhook payloads: only the fields hmig reads, plus
a few it must ignore. `test_every_field_read_is_in_githubs_webhook_schema` checks those field
paths against GitHub's own webhook schemas (`@octokit/openapi`, installed by scripts/setup), so a
renamed or misspelt field fails here rather than in a user's workflow.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hmig.errors import ConfigurationError
from hmig.github.event import Event, parse_event, read_event

HEAD = "a" * 40
MERGE = "b" * 40
BASE_REPO = {"full_name": "org/app", "fork": False}
FORK_REPO = {"full_name": "contributor/app", "fork": True}


def pull_request_payload(*, head_repo: object, action: str = "synchronize") -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": "open",
            "merge_commit_sha": MERGE,  # the test merge commit: not what was pushed
            "head": {"ref": "feature/x", "sha": HEAD, "repo": head_repo},
            "base": {"ref": "main", "sha": "c" * 40, "repo": BASE_REPO},
        },
        "repository": BASE_REPO,
        "sender": {"login": "someone", "type": "User"},
    }


def workflow_run_payload(*, head_repo: dict[str, Any], pulls: list[dict[str, Any]]) -> dict:
    return {
        "action": "completed",
        "workflow_run": {
            "event": "pull_request",
            "conclusion": "success",
            "head_branch": "feature/x",
            "head_sha": HEAD,
            "head_repository": head_repo,
            "repository": BASE_REPO,
            "pull_requests": pulls,
        },
        "repository": BASE_REPO,
    }


PULL_OF_RUN = {
    "number": 7,
    "head": {"ref": "feature/x", "sha": HEAD, "repo": {"id": 1, "name": "app"}},
    "base": {"ref": "main", "sha": "c" * 40, "repo": {"id": 1, "name": "app"}},
}

CASES: list[tuple[str, str, dict[str, Any], Event]] = [
    (
        "same-repository pull request",
        "pull_request",
        pull_request_payload(head_repo=BASE_REPO),
        Event(
            name="pull_request",
            action="synchronize",
            repository="org/app",
            head_repository="org/app",
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            base_ref="main",
            is_fork=False,
        ),
    ),
    (
        "pull request from a fork",
        "pull_request",
        pull_request_payload(head_repo=FORK_REPO, action="opened"),
        Event(
            name="pull_request",
            action="opened",
            repository="org/app",
            head_repository="contributor/app",
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            base_ref="main",
            is_fork=True,
        ),
    ),
    (
        "pull request whose fork was deleted",
        "pull_request",
        pull_request_payload(head_repo=None),
        Event(
            name="pull_request",
            action="synchronize",
            repository="org/app",
            head_repository=None,
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            base_ref="main",
            is_fork=True,
        ),
    ),
    (
        "pull_request_target from a fork",
        "pull_request_target",
        pull_request_payload(head_repo=FORK_REPO),
        Event(
            name="pull_request_target",
            action="synchronize",
            repository="org/app",
            head_repository="contributor/app",
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            base_ref="main",
            is_fork=True,
        ),
    ),
    (
        "same repository, owner spelt differently",
        "pull_request",
        pull_request_payload(head_repo={"full_name": "Org/App"}),
        Event(
            name="pull_request",
            action="synchronize",
            repository="org/app",
            head_repository="Org/App",
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            base_ref="main",
            is_fork=False,
        ),
    ),
    (
        "push to main",
        "push",
        {
            "ref": "refs/heads/main",
            "before": "d" * 40,
            "after": MERGE,
            "deleted": False,
            "repository": BASE_REPO,
            "head_commit": {"id": MERGE},
        },
        Event(
            name="push",
            repository="org/app",
            head_repository="org/app",
            head_sha=MERGE,
            head_ref="refs/heads/main",
        ),
    ),
    (
        "push deleting a branch",
        "push",
        {"ref": "refs/heads/old", "after": "0" * 40, "deleted": True, "repository": BASE_REPO},
        Event(
            name="push",
            repository="org/app",
            head_repository="org/app",
            head_sha=None,
            head_ref="refs/heads/old",
        ),
    ),
    (
        "merge queue",
        "merge_group",
        {
            "action": "checks_requested",
            "merge_group": {
                "head_sha": HEAD,
                "head_ref": "refs/heads/gh-readonly-queue/main/pr-7-" + "c" * 40,
                "base_sha": "c" * 40,
                "base_ref": "refs/heads/main",
            },
            "repository": BASE_REPO,
        },
        Event(
            name="merge_group",
            action="checks_requested",
            repository="org/app",
            head_repository="org/app",
            head_sha=HEAD,
            head_ref="refs/heads/gh-readonly-queue/main/pr-7-" + "c" * 40,
            base_ref="refs/heads/main",
        ),
    ),
    (
        "workflow_run after a same-repository pull request",
        "workflow_run",
        workflow_run_payload(head_repo=BASE_REPO, pulls=[PULL_OF_RUN]),
        Event(
            name="workflow_run",
            action="completed",
            repository="org/app",
            head_repository="org/app",
            pull_number=7,
            head_sha=HEAD,
            head_ref="feature/x",
            triggering_event="pull_request",
        ),
    ),
    (
        "workflow_run after a fork's pull request (GitHub lists no PR)",
        "workflow_run",
        workflow_run_payload(head_repo=FORK_REPO, pulls=[]),
        Event(
            name="workflow_run",
            action="completed",
            repository="org/app",
            head_repository="contributor/app",
            pull_number=None,
            head_sha=HEAD,
            head_ref="feature/x",
            is_fork=True,
            triggering_event="pull_request",
        ),
    ),
    (
        "workflow_run whose branch has two pull requests",
        "workflow_run",
        workflow_run_payload(
            head_repo=BASE_REPO, pulls=[PULL_OF_RUN, {**PULL_OF_RUN, "number": 9}]
        ),
        Event(
            name="workflow_run",
            action="completed",
            repository="org/app",
            head_repository="org/app",
            pull_number=None,
            head_sha=HEAD,
            head_ref="feature/x",
            triggering_event="pull_request",
        ),
    ),
    (
        "workflow_dispatch",
        "workflow_dispatch",
        {"ref": "refs/heads/main", "inputs": {"env": "prod"}, "repository": BASE_REPO},
        Event(
            name="workflow_dispatch",
            repository="org/app",
            head_repository="org/app",
            head_ref="refs/heads/main",
        ),
    ),
    (
        "schedule",
        "schedule",
        {"schedule": "17 3 * * *"},
        Event(name="schedule"),
    ),
    (
        "a comment on a pull request",
        "issue_comment",
        {
            "action": "created",
            "issue": {"number": 7, "pull_request": {"url": "https://api.github.com/x"}},
            "repository": BASE_REPO,
        },
        Event(
            name="issue_comment",
            action="created",
            repository="org/app",
            head_repository="org/app",
            pull_number=7,
        ),
    ),
    (
        "a comment on an issue",
        "issue_comment",
        {"action": "created", "issue": {"number": 8}, "repository": BASE_REPO},
        Event(
            name="issue_comment", action="created", repository="org/app", head_repository="org/app"
        ),
    ),
    (
        "an event hmig does not know",
        "release",
        {"action": "published", "release": {"tag_name": "v1"}, "repository": BASE_REPO},
        Event(name="release", action="published", repository="org/app", head_repository="org/app"),
    ),
]


@pytest.mark.parametrize(
    ("name", "payload", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_payloads(name: str, payload: dict[str, Any], expected: Event) -> None:
    assert parse_event(name=name, payload=payload) == expected


def test_the_pull_request_flags() -> None:
    same = parse_event(name="pull_request", payload=pull_request_payload(head_repo=BASE_REPO))
    target = parse_event(
        name="pull_request_target", payload=pull_request_payload(head_repo=FORK_REPO)
    )
    push = parse_event(name="push", payload={"after": HEAD, "repository": BASE_REPO})
    assert (same.is_pull_request, same.is_pull_request_target) == (True, False)
    assert (target.is_pull_request, target.is_pull_request_target) == (True, True)
    assert (push.is_pull_request, push.is_pull_request_target) == (False, False)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"pull_request": None},
        {"pull_request": {"number": "7", "head": "x", "base": []}},
        {"pull_request": {"number": True}},
        {"workflow_run": {"pull_requests": "none"}},
    ],
)
def test_odd_payloads_give_an_event_without_the_missing_parts(payload: dict[str, Any]) -> None:
    for name in ("pull_request", "workflow_run", "push", "merge_group", "schedule"):
        event = parse_event(name=name, payload=payload)
        assert event.name == name
        assert event.pull_number is None
        assert event.head_sha is None


def test_read_event_fills_in_what_the_payload_lacks(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"schedule": "17 3 * * *"}), encoding="utf-8")
    event = read_event("schedule", path, repository="org/app", sha=MERGE)
    assert event == Event(
        name="schedule", repository="org/app", head_repository="org/app", head_sha=MERGE
    )


def test_read_event_prefers_the_payloads_head_over_github_sha(tmp_path: Path) -> None:
    # For pull_request GITHUB_SHA is the test merge commit; the PR's head is in the payload.
    path = tmp_path / "event.json"
    path.write_text(json.dumps(pull_request_payload(head_repo=FORK_REPO)), encoding="utf-8")
    event = read_event("pull_request", path, repository="org/app", sha=MERGE)
    assert (event.head_sha, event.pull_number, event.is_fork) == (HEAD, 7, True)


def test_a_deleted_fork_stays_unknown_after_the_fallbacks(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(pull_request_payload(head_repo=None)), encoding="utf-8")
    event = read_event("pull_request", path, repository="org/app", sha=MERGE)
    assert (event.head_repository, event.is_fork) == (None, True)


def test_without_a_payload_file_only_the_environment_is_known() -> None:
    event = read_event("workflow_dispatch", None, repository="org/app", sha=MERGE)
    assert event == Event(
        name="workflow_dispatch", repository="org/app", head_repository="org/app", head_sha=MERGE
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ("[1, 2]", "not a JSON object"),
        (b"\xff\xfe{}", "not readable JSON"),
    ],
)
def test_a_bad_payload_file_is_a_configuration_error(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "event.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as caught:
        read_event("pull_request", path)
    assert str(path) in caught.value.message


# --- the fields read exist in GitHub's webhook schemas ---------------------------------------

OPENAPI = (
    Path(__file__).resolve().parents[1]
    / "fakegithub/node_modules/@octokit/openapi/generated/api.github.com.json"
)
# (webhook, path) for every field event.py reads; "[]" steps into an array's items.
FIELDS_READ = [
    ("pull-request-synchronize", "action"),
    ("pull-request-synchronize", "number"),
    ("pull-request-synchronize", "repository.full_name"),
    ("pull-request-synchronize", "pull_request.number"),
    ("pull-request-synchronize", "pull_request.head.sha"),
    ("pull-request-synchronize", "pull_request.head.ref"),
    ("pull-request-synchronize", "pull_request.head.repo.full_name"),
    ("pull-request-synchronize", "pull_request.base.ref"),
    ("pull-request-synchronize", "pull_request.base.repo.full_name"),
    ("pull-request-opened", "pull_request.head.repo.full_name"),
    ("push", "after"),
    ("push", "ref"),
    ("push", "repository.full_name"),
    ("merge-group-checks-requested", "action"),
    ("merge-group-checks-requested", "merge_group.head_sha"),
    ("merge-group-checks-requested", "merge_group.head_ref"),
    ("merge-group-checks-requested", "merge_group.base_ref"),
    ("merge-group-checks-requested", "repository.full_name"),
    ("workflow-run-completed", "workflow_run.head_sha"),
    ("workflow-run-completed", "workflow_run.head_branch"),
    ("workflow-run-completed", "workflow_run.event"),
    ("workflow-run-completed", "workflow_run.head_repository.full_name"),
    ("workflow-run-completed", "workflow_run.repository.full_name"),
    ("workflow-run-completed", "workflow_run.pull_requests.[].number"),
    ("workflow-run-completed", "repository.full_name"),
    ("workflow-dispatch", "ref"),
    ("workflow-dispatch", "repository.full_name"),
    ("issue-comment-created", "issue.number"),
    ("issue-comment-created", "issue.pull_request"),
]


@cache
def _openapi() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return loaded


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and every allOf/anyOf/oneOf branch of it, with `$ref`s resolved."""
    while "$ref" in schema:
        schema = _openapi()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    found = [schema]
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key, ()):
            found += _branches(branch)
    return found


def _children(schema: dict[str, Any], step: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for branch in _branches(schema):
        if step == "[]" and "items" in branch:
            out.append(branch["items"])
        elif step in branch.get("properties", {}):
            out.append(branch["properties"][step])
    return out


@pytest.mark.parametrize(("webhook", "field"), FIELDS_READ)
def test_every_field_read_is_in_githubs_webhook_schema(webhook: str, field: str) -> None:
    assert OPENAPI.exists(), "run scripts/setup: it installs @octokit/openapi for these tests"
    hook = _openapi()["x-webhooks"][webhook]["post"]
    schemas = [hook["requestBody"]["content"]["application/json"]["schema"]]
    for step in field.split("."):
        schemas = [child for schema in schemas for child in _children(schema, step)]
        assert schemas, f"{webhook}: no field {field!r} (stopped at {step!r})"
