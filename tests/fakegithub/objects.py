"""The JSON objects the fake GitHub answers with: users, repositories, pull requests, comments.

Pure builders: each takes plain values and returns the dict GitHub's REST API would, with every
field GitHub's OpenAPI description lists for that object (checked by
`tests/integration/test_fake_github.py` against `@octokit/openapi`), in GitHub's field order.
They hold no state and do no I/O; `server.py` owns the state and decides which object to show.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# The real id of github-actions[bot], the author of every comment made with GITHUB_TOKEN
# (Bytebase's action matches on it: /work/shared/reference/github-actions.md §1, anchors).
GITHUB_ACTIONS_BOT_ID = 41898282

Json = dict[str, Any]

# Fields that API version 2026-03-10 removed, per the `x-github-breaking-changes` of GitHub's
# OpenAPI description; a request for that version gets the objects without them.
NEW_VERSION = "2026-03-10"
_REMOVED = {
    "pull-request": ("merge_commit_sha", "assignee"),
    "repository": ("use_squash_pr_title_as_default", "master_branch", "has_downloads"),
    "rate-limit-overview": ("rate",),
}


def _at_version(kind: str, obj: Json, version: str) -> Json:
    if version >= NEW_VERSION:
        for name in _REMOVED[kind]:
            obj.pop(name, None)
    return obj


@dataclass(frozen=True)
class Account:
    """A GitHub user, bot or organisation as it appears in `user` and `owner` fields."""

    login: str
    id: int
    type: str  # "User", "Bot" or "Organization"


@dataclass(frozen=True)
class Site:
    """Where the objects point: the API root (the fake's own URL) and the web root."""

    api: str
    web: str


@dataclass(frozen=True)
class RepoInfo:
    """What a repository object is built from."""

    id: int
    owner: Account
    name: str
    default_branch: str
    created_at: str

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass(frozen=True)
class PullInfo:
    """What a pull request object is built from."""

    id: int
    number: int
    state: str  # "open" or "closed"
    merged: bool
    title: str
    author: Account
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    merge_commit_sha: str | None
    created_at: str
    updated_at: str
    closed_at: str | None
    merged_at: str | None
    comments: int


@dataclass(frozen=True)
class CommentInfo:
    """What an issue comment object is built from."""

    id: int
    issue_number: int
    is_pull: bool
    body: str
    author: Account
    author_association: str
    created_at: str
    updated_at: str


def node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id, e.g. `MDEyOklzc3VlQ29tbWVudDE=` for IssueComment 1.

    The format (base64 of "<len>:<Type><id>") is the one in GitHub's own OpenAPI examples.
    """
    raw = (
        f"{len(kind):03d}:{kind}{number}" if len(kind) >= 10 else f"{len(kind):02d}:{kind}{number}"
    )
    return base64.b64encode(raw.encode()).decode()


def simple_user(site: Site, account: Account) -> Json:
    """The `simple-user` object; bots get GitHub's bot URLs (`%5Bbot%5D`, `/apps/<slug>`)."""
    login = account.login
    api_user = f"{site.api}/users/{quote(login, safe='')}"
    if account.type == "Bot":
        html_url = f"{site.web}/apps/{login.removesuffix('[bot]')}"
        kind = "Bot"
    else:
        html_url = f"{site.web}/{login}"
        kind = "Organization" if account.type == "Organization" else "User"
    return {
        "login": login,
        "id": account.id,
        "node_id": node_id(kind, account.id),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{account.id}?v=4",
        "gravatar_id": "",
        "url": api_user,
        "html_url": html_url,
        "followers_url": f"{api_user}/followers",
        "following_url": f"{api_user}/following{{/other_user}}",
        "gists_url": f"{api_user}/gists{{/gist_id}}",
        "starred_url": f"{api_user}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api_user}/subscriptions",
        "organizations_url": f"{api_user}/orgs",
        "repos_url": f"{api_user}/repos",
        "events_url": f"{api_user}/events{{/privacy}}",
        "received_events_url": f"{api_user}/received_events",
        "type": account.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def private_user(site: Site, account: Account, created_at: str) -> Json:
    """`GET /user` for a personal access token: the `private-user` object."""
    return {
        **simple_user(site, account),
        "user_view_type": "private",
        "name": None,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "notification_email": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": created_at,
        "updated_at": created_at,
        "private_gists": 0,
        "total_private_repos": 0,
        "owned_private_repos": 0,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
        "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
    }


def repository(site: Site, repo: RepoInfo, version: str) -> Json:
    """The `repository` object embedded in a pull request's `head` and `base`."""
    api = f"{site.api}/repos/{repo.full_name}"
    html = f"{site.web}/{repo.full_name}"
    host = site.web.split("://", 1)[-1]
    obj = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": False,
        "owner": simple_user(site, repo.owner),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": repo.created_at,
        "updated_at": repo.created_at,
        "pushed_at": repo.created_at,
        "git_url": f"git://{host}/{repo.full_name}.git",
        "ssh_url": f"git@{host}:{repo.full_name}.git",
        "clone_url": f"{html}.git",
        "svn_url": html,
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": 0,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "public",
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": repo.default_branch,
    }
    return _at_version("repository", obj, version)


def _pull_links(site: Site, repo: RepoInfo, number: int, head_sha: str) -> Json:
    api = f"{site.api}/repos/{repo.full_name}"
    return {
        "self": {"href": f"{api}/pulls/{number}"},
        "html": {"href": f"{site.web}/{repo.full_name}/pull/{number}"},
        "issue": {"href": f"{api}/issues/{number}"},
        "comments": {"href": f"{api}/issues/{number}/comments"},
        "review_comments": {"href": f"{api}/pulls/{number}/comments"},
        "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
        "commits": {"href": f"{api}/pulls/{number}/commits"},
        "statuses": {"href": f"{api}/statuses/{head_sha}"},
    }


def pull_request_simple(site: Site, repo: RepoInfo, pull: PullInfo, version: str) -> Json:
    """The `pull-request-simple` object (`GET /repos/{o}/{r}/commits/{sha}/pulls`)."""
    api = f"{site.api}/repos/{repo.full_name}"
    author = simple_user(site, pull.author)
    links = _pull_links(site, repo, pull.number, pull.head_sha)
    repo_json = repository(site, repo, version)
    obj = {
        "url": f"{api}/pulls/{pull.number}",
        "id": pull.id,
        "node_id": node_id("PullRequest", pull.id),
        "html_url": f"{site.web}/{repo.full_name}/pull/{pull.number}",
        "diff_url": f"{site.web}/{repo.full_name}/pull/{pull.number}.diff",
        "patch_url": f"{site.web}/{repo.full_name}/pull/{pull.number}.patch",
        "issue_url": f"{api}/issues/{pull.number}",
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": author,
        "body": None,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": [],
        "milestone": None,
        "draft": False,
        "commits_url": f"{api}/pulls/{pull.number}/commits",
        "review_comments_url": f"{api}/pulls/{pull.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pull.number}/comments",
        "statuses_url": f"{api}/statuses/{pull.head_sha}",
        "head": {
            "label": f"{repo.owner.login}:{pull.head_ref}",
            "ref": pull.head_ref,
            "sha": pull.head_sha,
            "user": simple_user(site, repo.owner),
            "repo": repo_json,
        },
        "base": {
            "label": f"{repo.owner.login}:{pull.base_ref}",
            "ref": pull.base_ref,
            "sha": pull.base_sha,
            "user": simple_user(site, repo.owner),
            "repo": repo_json,
        },
        "_links": links,
        "author_association": "MEMBER",
        "auto_merge": None,
        "active_lock_reason": None,
    }
    return _at_version("pull-request", obj, version)


def pull_request(site: Site, repo: RepoInfo, pull: PullInfo, version: str) -> Json:
    """The full `pull-request` object (`GET /repos/{o}/{r}/pulls/{number}`)."""
    return {
        **pull_request_simple(site, repo, pull, version),
        "merged": pull.merged,
        "mergeable": None if pull.state == "closed" else True,
        "rebaseable": None if pull.state == "closed" else True,
        "mergeable_state": "unknown" if pull.state == "closed" else "clean",
        "merged_by": simple_user(site, repo.owner) if pull.merged else None,
        "comments": pull.comments,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
    }


def issue_comment(site: Site, repo: RepoInfo, comment: CommentInfo) -> Json:
    """The `issue-comment` object, as the list, create, get and update endpoints return it.

    The comment's `url` is the fake's own, so following it reaches the fake; `html_url` says
    `/pull/` for a pull request's conversation, as github.com does.
    """
    api = f"{site.api}/repos/{repo.full_name}"
    page = "pull" if comment.is_pull else "issues"
    return {
        "url": f"{api}/issues/comments/{comment.id}",
        "html_url": (
            f"{site.web}/{repo.full_name}/{page}/{comment.issue_number}#issuecomment-{comment.id}"
        ),
        "issue_url": f"{api}/issues/{comment.issue_number}",
        "id": comment.id,
        "node_id": node_id("IssueComment", comment.id),
        "user": simple_user(site, comment.author),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "body": comment.body,
        "author_association": comment.author_association,
        "reactions": {
            "url": f"{api}/issues/comments/{comment.id}/reactions",
            "total_count": 0,
            "+1": 0,
            "-1": 0,
            "laugh": 0,
            "hooray": 0,
            "confused": 0,
            "heart": 0,
            "rocket": 0,
            "eyes": 0,
        },
        "performed_via_github_app": None,
        "pin": None,
        "minimized": None,
    }


def rate_limit_overview(*, limit: int, remaining: int, reset: int, used: int, version: str) -> Json:
    """`GET /rate_limit`: the core bucket as counted; the other buckets untouched."""
    core = {"limit": limit, "used": used, "remaining": remaining, "reset": reset}
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": reset}
    graphql = {"limit": limit, "used": 0, "remaining": limit, "reset": reset}
    obj = {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core}
    return _at_version("rate-limit-overview", obj, version)
