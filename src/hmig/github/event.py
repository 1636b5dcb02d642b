"""The workflow's event payload (`$GITHUB_EVENT_PATH`) → a frozen `Event`.

GitHub writes the webhook payload of the triggering event to a JSON file; the PR number and the
PR's real head commit come from there, never from `GITHUB_REF` (which is the merge ref for
`pull_request` and the default branch for `pull_request_target`, github-actions.md §3.8). This
module reads that one file and knows each event's shape; it must not call the API (the PRs of a
pushed commit are `comments.pulls_for_commit`'s job), read `os.environ`, or decide policy (what
to do under `pull_request_target` or on a fork is the entry point's decision).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmig.errors import ConfigurationError

# `push` of a deleted branch carries `after` = forty zeros (push webhook payload docs).
_NULL_SHA = re.compile(r"^0{40}$")
PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})


@dataclass(frozen=True, slots=True)
class Event:
    """What hmig needs from the triggering event.

    `repository` is the repository the workflow runs in (the PR's base); `head_repository` is
    where the PR's or the run's head commit lives. `is_fork` is true when they differ, or when
    the head repository is gone (a deleted fork): its token is read-only (github-actions.md
    §3.7). `pull_number` is None when the payload names no single PR (push, schedule, …).
    """

    name: str
    action: str | None = None
    repository: str | None = None
    head_repository: str | None = None
    pull_number: int | None = None
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    is_fork: bool = False
    triggering_event: str | None = None  # `workflow_run`: the event of the run it follows

    @property
    def is_pull_request(self) -> bool:
        """A `pull_request` or `pull_request_target` event."""
        return self.name in PULL_REQUEST_EVENTS

    @property
    def is_pull_request_target(self) -> bool:
        """The base repository's workflow with a write token and secrets, for a PR's head.

        Running that head's SQL here is a "pwn request" (GitHub's `pull_request_target`
        security guide); the entry point must refuse to apply under it.
        """
        return self.name == "pull_request_target"


def read_event(
    name: str,
    path: Path | None,
    *,
    repository: str | None = None,
    sha: str | None = None,
) -> Event:
    """Read the payload at `path` for the event `name` (`GITHUB_EVENT_NAME`).

    `repository` and `sha` (`GITHUB_REPOSITORY`, `GITHUB_SHA`) fill in what a payload does not
    carry: `schedule` and `workflow_dispatch` name no commit. No path (a run outside Actions)
    gives an event with only those.
    """
    payload = _read(path) if path is not None else {}
    event = parse_event(name=name, payload=payload)
    base = event.repository or repository
    return Event(
        name=event.name,
        action=event.action,
        repository=base,
        # a deleted fork stays unknown; anything else not named runs in the base repository
        head_repository=event.head_repository or (None if event.is_fork else base),
        pull_number=event.pull_number,
        head_sha=event.head_sha or sha,
        head_ref=event.head_ref,
        base_ref=event.base_ref,
        is_fork=event.is_fork,
        triggering_event=event.triggering_event,
    )


def _read(path: Path) -> Mapping[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"the event payload {path} does not exist",
            hint="GITHUB_EVENT_PATH must name the file the runner wrote; unset it outside Actions.",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the event payload {path} is not readable JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ConfigurationError(f"the event payload {path} is not a JSON object")
    return payload


def parse_event(*, name: str, payload: Mapping[str, Any]) -> Event:
    """The `Event` of one payload; an event hmig does not know keeps only its repository."""
    parser = _PARSERS.get(name, _other)
    return parser(name, payload)


def _pull_request(name: str, payload: Mapping[str, Any]) -> Event:
    pull = _obj(payload, "pull_request")
    head, base = _obj(pull, "head"), _obj(pull, "base")
    repository = _full_name(base.get("repo")) or _full_name(payload.get("repository"))
    head_repository = _full_name(head.get("repo"))
    return Event(
        name=name,
        action=_str(payload, "action"),
        repository=repository,
        head_repository=head_repository,
        pull_number=_int(pull, "number") or _int(payload, "number"),
        head_sha=_str(head, "sha"),
        head_ref=_str(head, "ref"),
        base_ref=_str(base, "ref"),
        # `head.repo` is null once the fork is deleted; a fork it was.
        is_fork=head_repository is None or _differ(head_repository, repository),
    )


def _push(name: str, payload: Mapping[str, Any]) -> Event:
    after = _str(payload, "after")
    repository = _full_name(payload.get("repository"))
    return Event(
        name=name,
        repository=repository,
        head_repository=repository,
        head_sha=None if after is None or _NULL_SHA.match(after) else after,
        head_ref=_str(payload, "ref"),
    )


def _merge_group(name: str, payload: Mapping[str, Any]) -> Event:
    # A merge group may hold several PRs; its head ref names only one of them, so hmig reports
    # the merge group's commit and names no PR (merge_group webhook payload docs).
    group = _obj(payload, "merge_group")
    repository = _full_name(payload.get("repository"))
    return Event(
        name=name,
        action=_str(payload, "action"),
        repository=repository,
        head_repository=repository,
        head_sha=_str(group, "head_sha"),
        head_ref=_str(group, "head_ref"),
        base_ref=_str(group, "base_ref"),
    )


def _workflow_run(name: str, payload: Mapping[str, Any]) -> Event:
    run = _obj(payload, "workflow_run")
    repository = _full_name(payload.get("repository")) or _full_name(run.get("repository"))
    head_repository = _full_name(run.get("head_repository"))
    pulls = run.get("pull_requests")
    # `pull_requests` is filled only for PRs from the same repository; for a fork it is empty
    # and the PR must be looked up by `head_sha` (github-actions.md §3.7). Several PRs from one
    # branch name no single PR either.
    first = pulls[0] if isinstance(pulls, list) and len(pulls) == 1 else None
    return Event(
        name=name,
        action=_str(payload, "action"),
        repository=repository,
        head_repository=head_repository,
        pull_number=_int(first, "number") if isinstance(first, dict) else None,
        head_sha=_str(run, "head_sha"),
        head_ref=_str(run, "head_branch"),
        is_fork=head_repository is not None and _differ(head_repository, repository),
        triggering_event=_str(run, "event"),
    )


def _issue_comment(name: str, payload: Mapping[str, Any]) -> Event:
    issue = _obj(payload, "issue")
    repository = _full_name(payload.get("repository"))
    on_pull = isinstance(issue.get("pull_request"), dict)
    return Event(
        name=name,
        action=_str(payload, "action"),
        repository=repository,
        head_repository=repository,
        pull_number=_int(issue, "number") if on_pull else None,
    )


def _other(name: str, payload: Mapping[str, Any]) -> Event:
    # schedule, workflow_dispatch, …: no PR, and the commit is GITHUB_SHA.
    repository = _full_name(payload.get("repository"))
    return Event(
        name=name,
        action=_str(payload, "action"),
        repository=repository,
        head_repository=repository,
        head_ref=_str(payload, "ref"),
    )


def _obj(value: object, key: str) -> Mapping[str, Any]:
    found = value.get(key) if isinstance(value, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _str(value: object, key: str) -> str | None:
    found = value.get(key) if isinstance(value, Mapping) else None
    return found if isinstance(found, str) and found else None


def _int(value: object, key: str) -> int | None:
    found = value.get(key) if isinstance(value, Mapping) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _full_name(repo: object) -> str | None:
    return _str(repo, "full_name")


def _differ(a: str, b: str | None) -> bool:
    # Owner and repository names are case-insensitive on GitHub.
    return b is not None and a.lower() != b.lower()


_PARSERS = {
    "pull_request": _pull_request,
    "pull_request_target": _pull_request,
    "push": _push,
    "merge_group": _merge_group,
    "workflow_run": _workflow_run,
    "issue_comment": _issue_comment,
}
