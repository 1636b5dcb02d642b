"""The sticky PR comment, the PRs of a commit, and who "we" are on GitHub.

One comment per (repository, pull request, marker): the marker is a hidden HTML comment naming
the environment, on the comment's first line. "Ours" means that marker **and** our login as the
author, found over every page of the PR's comments: other actions read one page and post
duplicates on long PRs, or match on the bot's login alone and overwrite other tools' comments
(anchors.md §2 A). The comment is updated in place (an edit notifies no one) and left alone when
its body is already the one to post. This module turns those rules into REST calls through
`GitHubClient`; it renders nothing (the Markdown comes from the caller) and must not read
`os.environ`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hmig.errors import CommentTooLong, GitHubError, GitHubNotPermitted
from hmig.github.client import GitHubClient

# The author of every comment made with a workflow's GITHUB_TOKEN, on github.com and on GHES.
BOT_LOGIN = "github-actions[bot]"
# "Body is too long (maximum is 65536 characters)"; counted in code points, which is always
# within the 262,144 UTF-8 bytes GitHub really stores (github-actions.md §3.2).
MAX_BODY_CHARS = 65_536
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?$")  # SHA-1, or SHA-256 repositories
_MARKER = re.compile(r"^<!--[^\n]*-->$")


class Action(StrEnum):
    """What `upsert` did."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the body was already the one to post: no request sent
    SKIPPED = "skipped"  # none existed and `create=False`


@dataclass(frozen=True, slots=True)
class Comment:
    """An issue comment as hmig needs it."""

    id: int
    body: str
    author: str
    url: str | None


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of `upsert`; `comment` is None only when it was skipped."""

    action: Action
    comment: Comment | None

    @property
    def url(self) -> str | None:
        """The comment's address on github.com (or GHES), for the step output."""
        return self.comment.url if self.comment else None


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull request as the commit-pulls and get-pull endpoints describe it."""

    number: int
    state: str  # "open" or "closed"
    merged: bool
    head_sha: str | None
    merge_commit_sha: str | None
    url: str | None


def our_login(client: GitHubClient, *, bot_login: str = BOT_LOGIN) -> str:
    """The login GitHub records as the author of the comments this token writes.

    A personal access token (classic or fine-grained) or a user-to-server token can read
    `GET /user`: its `login` is the author. An installation token cannot: GitHub answers 403
    `Resource not accessible by integration`, and its comments are by the app's bot. For the
    workflow's GITHUB_TOKEN that bot is `github-actions[bot]`, on github.com and on GHES alike
    (peter-evans/create-or-update-comment makes the same inference). Another GitHub App's
    token writes as `<app-slug>[bot]`, which no REST call an installation token may make
    reveals (`GET /app` needs the app's JWT): pass it as `bot_login`. A wrong login never
    touches anyone's comment, but `upsert` then finds none of ours and posts a new one each
    run; `Posted.comment.author` names the login GitHub recorded, so the caller can warn with
    the value to configure.
    """
    try:
        user = client.get("/user")
    except GitHubNotPermitted:
        return bot_login
    login = user.get("login") if isinstance(user, Mapping) else None
    if not isinstance(login, str) or not login:
        raise GitHubError("GET /user: the answer has no login")
    return login


def find_comment(
    client: GitHubClient, *, repository: str, number: int, marker: str, author: str
) -> Comment | None:
    """Our comment on the PR: the oldest with the marker as its first line, by `author`.

    Pages are read in order (oldest first) until it is found: a PR with 150 comments costs two
    requests, or one when ours came early. Another tool's comment with the same marker, or a
    user quoting it, is not ours: the author must match too (logins are case-insensitive).
    """
    path = f"/repos/{_checked_repository(repository)}/issues/{_positive(number)}/comments"
    for item in client.paginate(path):
        comment = _comment(item)
        if comment.author.lower() == author.lower() and _starts_with(comment.body, marker):
            return comment
    return None


def upsert(
    client: GitHubClient,
    *,
    repository: str,
    number: int,
    marker: str,
    author: str,
    body: str,
    create: bool = True,
) -> Posted:
    """Create or update our comment on PR `number`; the marker is put first if it is not.

    An identical body sends no request (`UNCHANGED`). With `create=False` a missing comment
    stays missing (`SKIPPED`): a run with nothing to say updates a thread but starts none.
    A body over 65,536 characters is `CommentTooLong` before anything is sent; a token that may
    not write is `GitHubNotPermitted`.
    """
    _check_marker(marker)
    text = body if _starts_with(body, marker) else f"{marker}\n{body}"
    if len(text) > MAX_BODY_CHARS:
        raise CommentTooLong(
            f"the comment has {len(text):,} characters; GitHub takes at most {MAX_BODY_CHARS:,}",
            hint="The full report is in the job summary and the log.",
        )

    def ours() -> Comment | None:
        return find_comment(
            client, repository=repository, number=number, marker=marker, author=author
        )

    existing = ours()
    if existing is not None:
        if _same(existing.body, text):
            return Posted(Action.UNCHANGED, existing)
        path = f"/repos/{repository}/issues/comments/{existing.id}"
        return Posted(Action.UPDATED, _comment(client.patch(path, json={"body": text})))
    if not create:
        return Posted(Action.SKIPPED, None)

    def recheck() -> dict[str, Any] | None:
        # The POST went out but its answer was lost: if GitHub applied it, ours is there now.
        found = ours()
        return None if found is None else _as_json(found)

    created = client.post(
        f"/repos/{repository}/issues/{number}/comments", json={"body": text}, recheck=recheck
    )
    return Posted(Action.CREATED, _comment(created))


def pulls_for_commit(client: GitHubClient, *, repository: str, sha: str) -> list[PullRequest]:
    """The PRs GitHub associates with a commit (`GET …/commits/{sha}/pulls`), every page.

    For a commit on the default branch that is the merged PR that introduced it; otherwise the
    open PRs that contain it (GitHub's docs): after a push to main, where apply results go.
    """
    if not _SHA.match(sha):
        raise ValueError(f"not a commit SHA: {sha!r}")
    path = f"/repos/{_checked_repository(repository)}/commits/{sha}/pulls"
    return [_pull(item) for item in client.paginate(path)]


def get_pull(client: GitHubClient, *, repository: str, number: int) -> PullRequest:
    """One PR (`GET /repos/{owner}/{repo}/pulls/{number}`), e.g. to compare its head commit."""
    path = f"/repos/{_checked_repository(repository)}/pulls/{_positive(number)}"
    return _pull(client.get(path))


def pull_head_sha(client: GitHubClient, *, repository: str, number: int) -> str | None:
    """The PR's current head commit: a report made for an older head is stale."""
    return get_pull(client, repository=repository, number=number).head_sha


# --- values from GitHub's JSON ---------------------------------------------------------------


def _comment(item: object) -> Comment:
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
        raise GitHubError("GitHub answered something that is not a comment")
    user = item.get("user")
    login = user.get("login") if isinstance(user, Mapping) else None
    body, url = item.get("body"), item.get("html_url")
    return Comment(
        id=item["id"],
        body=body if isinstance(body, str) else "",
        # A deleted account's comments have `user: null`; no login matches "".
        author=login if isinstance(login, str) else "",
        url=url if isinstance(url, str) else None,
    )


def _as_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "body": comment.body,
        "user": {"login": comment.author},
        "html_url": comment.url,
    }


def _pull(item: object) -> PullRequest:
    if not isinstance(item, Mapping) or not isinstance(item.get("number"), int):
        raise GitHubError("GitHub answered something that is not a pull request")
    head = item.get("head")
    head_sha = head.get("sha") if isinstance(head, Mapping) else None
    merge_sha, url = item.get("merge_commit_sha"), item.get("html_url")
    return PullRequest(
        number=item["number"],
        state=str(item.get("state") or ""),
        # `merged` is only in the full object; `merged_at` is in both.
        merged=bool(item.get("merged") or item.get("merged_at")),
        head_sha=head_sha if isinstance(head_sha, str) else None,
        merge_commit_sha=merge_sha if isinstance(merge_sha, str) else None,
        url=url if isinstance(url, str) else None,
    )


# --- rules -------------------------------------------------------------------------------------


def _starts_with(body: str, marker: str) -> bool:
    # First line only: a marker quoted further down (a user's reply, or a migration's text in
    # another environment's comment) does not make a comment ours.
    return body.lstrip("\ufeff \t\r\n").startswith(marker)


def _same(stored: str, wanted: str) -> bool:
    # GitHub may store CRLF for LF and drop trailing blanks; neither is a change worth a PATCH.
    def normal(text: str) -> str:
        return text.replace("\r\n", "\n").rstrip()

    return normal(stored) == normal(wanted)


def _check_marker(value: str) -> None:
    # Hidden (an HTML comment) and on one line: a visible marker would show in the PR, and a
    # multi-line one could not be the first line.
    if not _MARKER.match(value):
        raise ValueError(f"a marker is a one-line HTML comment, not {value!r}")


def _checked_repository(repository: str) -> str:
    # It becomes part of a URL path: no `..`, no extra segments.
    if not _REPOSITORY.match(repository) or ".." in repository:
        raise ValueError(f"not an owner/name repository: {repository!r}")
    return repository


def _positive(number: int) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"not a pull request number: {number!r}")
    return number
