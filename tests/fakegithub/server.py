"""A stateful fake of GitHub's REST API on loopback, for testing hmig's GitHub client.

`FakeGitHub` serves, on 127.0.0.1 and a random port, the few endpoints hmig's sticky PR comment
needs (the authenticated user, issue comments, a commit's pull requests, a pull request) with
GitHub's documented behaviour: its authentication and permission errors, its validation errors
(including the 65,536-character comment limit), page-number pagination with a `Link` header
written as GitHub writes it, a primary rate limit that really counts, the secondary limit on
content creation, and GitHub's headers on every answer. Faults (`Fault`) are queued by a test
and consumed in order: 5xx answers, injected rate limits, slow answers, dropped connections.
Every request is recorded (`FakeGitHub.requests`) in the order the fake applied it.

Facts and strings come from /work/shared/reference/github-actions.md §3 (endpoints, limits,
error bodies) and from GitHub's recorded answers in `@octokit/fixtures`; the objects are checked
against `@octokit/openapi` by tests/integration/test_fake_github.py. This is test code: it must
not import hmig, and it answers only on loopback.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.fakegithub import objects
from tests.fakegithub.objects import Account, CommentInfo, Json, PullInfo, RepoInfo, Site

FaultKind = Literal[
    "status", "primary_rate_limit", "secondary_rate_limit", "body_too_long", "slow", "drop"
]
_FAULT_KINDS = frozenset(
    ("status", "primary_rate_limit", "secondary_rate_limit", "body_too_long", "slow", "drop")
)

# API versions GitHub serves; a request without the header gets the oldest one [D-versions].
SUPPORTED_API_VERSIONS = (objects.NEW_VERSION, "2022-11-28")
DEFAULT_API_VERSION = "2022-11-28"
# GitHub's comment limit, counted here in code points, the contract hmig keeps (reference §3.2).
MAX_COMMENT_CHARS = 65536
# Documented primary limits: GITHUB_TOKEN 1,000 requests/hour/repository, a user 5,000,
# unauthenticated 60 per address (reference §3.4).
BOT_RATE_LIMIT = 1000
USER_RATE_LIMIT = 5000
ANONYMOUS_RATE_LIMIT = 60
RATE_WINDOW_S = 3600

_DOCS = "https://docs.github.com/rest"
_DOC_LIST = f"{_DOCS}/issues/comments#list-issue-comments"
_DOC_CREATE = f"{_DOCS}/issues/comments#create-an-issue-comment"
_DOC_GET = f"{_DOCS}/issues/comments#get-an-issue-comment"
_DOC_UPDATE = f"{_DOCS}/issues/comments#update-an-issue-comment"
_DOC_DELETE = f"{_DOCS}/issues/comments#delete-an-issue-comment"
_DOC_COMMIT_PULLS = f"{_DOCS}/commits/commits#list-pull-requests-associated-with-a-commit"
_DOC_PULL = f"{_DOCS}/pulls/pulls#get-a-pull-request"
_DOC_USER = f"{_DOCS}/users/users#get-the-authenticated-user"
_DOC_RATE = f"{_DOCS}/overview/rate-limits-for-the-rest-api"
_DOC_SECONDARY = f"{_DOC_RATE}#about-secondary-rate-limits"
_DOC_USER_AGENT = (
    "https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required"
)

_SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)
_CONTENT_MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later. If you reach out to GitHub Support for "
    "help, please include the request ID {request_id}."
)
# Bodies GitHub's application answers for a status fault (the edge's 502/504 differ, above).
_STATUS_MESSAGES = {500: "Server Error", 503: "Service Unavailable"}
_TOO_LONG = {
    "resource": "IssueComment",
    "code": "unprocessable",
    "field": "data",
    "message": f"Body is too long (maximum is {MAX_COMMENT_CHARS} characters)",
}

# Headers api.github.com sends on every API answer (recorded in @octokit/fixtures).
_STATIC_HEADERS = (
    ("X-GitHub-Media-Type", "github.v3; format=json"),
    (
        "Access-Control-Expose-Headers",
        "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, "
        "X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, "
        "X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, "
        "X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset",
    ),
    ("Access-Control-Allow-Origin", "*"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubdomains; preload"),
    ("X-Frame-Options", "deny"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-XSS-Protection", "0"),
    ("Referrer-Policy", "origin-when-cross-origin, strict-origin-when-cross-origin"),
    ("Content-Security-Policy", "default-src 'none'"),
    ("Vary", "Accept-Encoding, Accept, X-Requested-With"),
)


@dataclass(frozen=True)
class Fault:
    """A misbehaviour to inject; queued faults are consumed in order by the requests they match.

    `method` (exact, any case) and `path` (a regex searched in the path, without the query)
    narrow which requests it hits; `times` is how many of them. `status` is the answer's status
    for `status` (default 500) and the rate limits (403, or 429). `retry_after` is the
    secondary limit's `retry-after` (default 60), `reset_in` how far the primary limit's
    `x-ratelimit-reset` lies ahead (default 60 s), `delay_s` how long `slow` waits before the
    request is handled (it is then handled as usual). `drop` closes the connection without an
    answer; with `after_write=True` the request is applied first, so only the answer is lost.
    """

    kind: FaultKind
    status: int | None = None
    method: str | None = None
    path: str | None = None
    times: int = 1
    retry_after: int | None = None
    reset_in: int | None = None
    delay_s: float = 0
    after_write: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.times < 1:
            raise ValueError("a fault applies at least once")
        if self.kind in ("primary_rate_limit", "secondary_rate_limit") and self.status not in (
            None,
            403,
            429,
        ):
            raise ValueError("GitHub answers a rate limit with 403 or 429")
        if self.kind == "status" and self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("a status fault answers with an error status")

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass(frozen=True)
class Recorded:
    """One request as the fake saw it; `status` is None when the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int | None


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def parsed_json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, UnicodeDecodeError):
            return None


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    drop: bool = False


@dataclass
class _Token:
    account: Account
    can_write: bool
    limit: int
    installation_id: int | None
    used: int = 0
    window_reset: int = 0
    created: deque[float] = field(default_factory=deque)


@dataclass
class _Repo:
    info: RepoInfo
    pulls: dict[int, PullInfo] = field(default_factory=dict)
    commits: set[str] = field(default_factory=set)


@dataclass
class _Comment:
    repo: str  # full name, lower case
    info: CommentInfo


@dataclass
class _Reply:
    """What a route answers, before the common headers are added."""

    status: int
    payload: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Caller:
    token: _Token | None
    key: str  # the rate-limit bucket


Route = Callable[["FakeGitHub", _Request, _Caller, dict[str, str]], _Reply]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, doc: str = _DOCS, **extra: Any) -> Json:
    # GitHub's error bodies carry the status as a string since 2023 ("status": "401").
    return {"message": message, **extra, "documentation_url": doc, "status": str(status)}


def _validation_failed(doc: str, *errors: Json) -> _Reply:
    return _Reply(422, _error(422, "Validation Failed", doc, errors=list(errors)))


def _not_found(doc: str = _DOCS) -> _Reply:
    return _Reply(404, _error(404, "Not Found", doc))


def _request_id() -> str:
    parts = (4, 4, 7, 8, 8)
    return ":".join(secrets.token_hex(n).upper()[:n] for n in parts)


def _page_number(value: str | None, default: int) -> int:
    # GitHub ignores a page or per_page that is not a positive integer.
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return number if number > 0 else default


class FakeGitHub:
    """GitHub's REST API for hmig's tests: `with FakeGitHub() as gh:` then point hmig at gh.url.

    `content_per_minute` / `content_per_hour` are GitHub's secondary limits on content creation
    (80 and 500 comments per token, reference §3.4); None turns one off. `web_url` is where the
    objects' `html_url` fields point.
    """

    def __init__(
        self,
        *,
        content_per_minute: int | None = 80,
        content_per_hour: int | None = 500,
        web_url: str = "https://github.com",
    ) -> None:
        self._lock = threading.Lock()
        self._content_limits = tuple(
            (limit, window)
            for limit, window in ((content_per_minute, 60.0), (content_per_hour, 3600.0))
            if limit is not None
        )
        self._web = web_url.rstrip("/")
        self._tokens: dict[str, _Token] = {}
        self._anonymous: dict[str, _Token] = {}
        self._accounts: dict[str, Account] = {}
        self._repos: dict[str, _Repo] = {}
        self._comments: dict[int, _Comment] = {}
        self._faults: list[list[Any]] = []  # [Fault, times left]
        self._requests: list[Recorded] = []
        self._crashes: list[Exception] = []
        # Ids past 2**31, like GitHub's comment ids today: a client storing them as int32 breaks.
        self._next_comment_id = 3_000_000_001
        self._next_id = 100_001
        self._server = _Server(self)
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                # A short poll: shutdown() waits for it, once per test.
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-github",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        if self._crashes:
            raise AssertionError(f"the fake GitHub crashed while answering: {self._crashes!r}")

    def _crashed(self, error: Exception) -> None:
        with self._lock:
            self._crashes.append(error)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def _site(self) -> Site:
        return Site(api=self.url, web=self._web)

    # --- setting up state ---------------------------------------------------------------

    def add_token(
        self,
        token: str,
        *,
        login: str,
        type: str = "User",
        can_write: bool = True,
        rate_limit: int | None = None,
    ) -> None:
        """Accept `token` for `login`; a `Bot` is an installation token (GITHUB_TOKEN).

        `can_write=False` is the read-only token of a fork PR; `rate_limit` is the primary
        limit per hour (default 1,000 for a bot, 5,000 for a user).
        """
        if type not in ("User", "Bot"):
            raise ValueError("a token belongs to a User or a Bot")
        with self._lock:
            account = self._account(login, type)
            default = BOT_RATE_LIMIT if type == "Bot" else USER_RATE_LIMIT
            self._tokens[token] = _Token(
                account=account,
                can_write=can_write,
                limit=default if rate_limit is None else rate_limit,
                installation_id=self._new_id() if type == "Bot" else None,
            )

    def add_pull(
        self,
        repo: str,
        number: int,
        *,
        head_sha: str,
        merge_commit_sha: str | None = None,
        state: str = "open",
        merged: bool = False,
        title: str | None = None,
        head_ref: str | None = None,
        base_ref: str = "main",
        login: str = "octocat",
    ) -> None:
        """Create the pull request (and its repository, `owner/name`, if new)."""
        if state not in ("open", "closed"):
            raise ValueError("a pull request is open or closed")
        if merged and state != "closed":
            raise ValueError("a merged pull request is closed")
        with self._lock:
            stored = self._repo_for(repo, create=True)
            assert stored is not None
            created = _now()
            stored.pulls[number] = PullInfo(
                id=self._new_id(),
                number=number,
                state=state,
                merged=merged,
                title=title or f"Pull request {number}",
                author=self._account(login, "User"),
                head_ref=head_ref or f"feature-{number}",
                head_sha=head_sha,
                base_ref=base_ref,
                base_sha=hashlib.sha1(f"{repo}:{base_ref}".encode()).hexdigest(),
                merge_commit_sha=merge_commit_sha,
                created_at=created,
                updated_at=created,
                closed_at=created if state == "closed" else None,
                merged_at=created if merged else None,
                comments=0,
            )
            stored.commits.add(head_sha)
            if merge_commit_sha:
                stored.commits.add(merge_commit_sha)

    def add_commit(self, repo: str, sha: str) -> None:
        """Make `sha` a commit of `repo` that no pull request is associated with."""
        with self._lock:
            stored = self._repo_for(repo, create=True)
            assert stored is not None
            stored.commits.add(sha)

    def add_comment(
        self,
        repo: str,
        number: int,
        body: str,
        *,
        login: str,
        type: str = "User",
        author_association: str = "NONE",
    ) -> int:
        """Store a comment on pull request `number` as if `login` had written it; its id."""
        with self._lock:
            stored = self._repo_for(repo)
            if stored is None or number not in stored.pulls:
                raise KeyError(f"no pull request {repo}#{number}: add_pull it first")
            return self._store_comment(
                stored, number, body, self._account(login, type), author_association
            ).id

    def comments(self, repo: str, number: int) -> list[Json]:
        """The comments of `repo`#`number` as the API returns them, oldest first."""
        with self._lock:
            stored = self._repo_for(repo)
            if stored is None:
                return []
            return [
                objects.issue_comment(self._site, stored.info, c.info)
                for c in self._comments_on(stored, number)
            ]

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.times])

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return [f for f, _left in self._faults]

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def rate_limit(self, token: str) -> dict[str, int]:
        """The primary limit of `token` as the fake counts it: limit, used, remaining, reset."""
        with self._lock:
            stored = self._tokens[token]
            self._roll_window(stored)
            return {
                "limit": stored.limit,
                "used": stored.used,
                "remaining": stored.limit - stored.used,
                "reset": stored.window_reset,
            }

    # --- internals (called with the lock held) --------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _account(self, login: str, type: str) -> Account:
        known = self._accounts.get(login.lower())
        if known is not None:
            return known
        if login == "github-actions[bot]":
            account = Account(login, objects.GITHUB_ACTIONS_BOT_ID, "Bot")
        else:
            account = Account(login, self._new_id(), type)
        self._accounts[login.lower()] = account
        return account

    def _repo_for(self, full_name: str, *, create: bool = False) -> _Repo | None:
        key = full_name.lower()
        if key not in self._repos and create:
            owner, sep, name = full_name.partition("/")
            if not sep or not owner or not name or "/" in name:
                raise ValueError(f"a repository is owner/name, not {full_name!r}")
            info = RepoInfo(
                id=self._new_id(),
                owner=self._account(owner, "Organization"),
                name=name,
                default_branch="main",
                created_at=_now(),
            )
            self._repos[key] = _Repo(info=info)
        return self._repos.get(key)

    def _repo_by_id(self, repo_id: int) -> _Repo | None:
        return next((r for r in self._repos.values() if r.info.id == repo_id), None)

    def _comments_on(self, repo: _Repo, number: int) -> list[_Comment]:
        key = repo.info.full_name.lower()
        found = [
            c for c in self._comments.values() if c.repo == key and c.info.issue_number == number
        ]
        return sorted(found, key=lambda c: c.info.id)

    def _store_comment(
        self, repo: _Repo, number: int, body: str, author: Account, association: str
    ) -> CommentInfo:
        now = _now()
        info = CommentInfo(
            id=self._next_comment_id,
            issue_number=number,
            is_pull=True,
            body=body,
            author=author,
            author_association=association,
            created_at=now,
            updated_at=now,
        )
        self._next_comment_id += 1
        self._comments[info.id] = _Comment(repo=repo.info.full_name.lower(), info=info)
        pull = repo.pulls[number]
        repo.pulls[number] = _replace_pull(pull, comments=pull.comments + 1)
        return info

    def _roll_window(self, token: _Token) -> None:
        # GitHub's hourly window starts with the first request after the previous one ended.
        now = int(time.time())
        if token.window_reset <= now:
            token.used = 0
            token.window_reset = now + RATE_WINDOW_S

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for entry in self._faults:
                fault: Fault = entry[0]
                if fault.matches(method, path):
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._faults.remove(entry)
                    return fault
            return None

    # --- handling one request --------------------------------------------------------------

    def _handle(self, request: _Request) -> _Response:
        fault = self._take_fault(request.method, request.path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)  # outside the lock: other requests go on meanwhile
            fault = None
        with self._lock:
            request_id = _request_id()
            if fault is not None and fault.kind == "drop" and not fault.after_write:
                self._record(request, None)
                return _Response(0, b"", (), drop=True)
            response = self._answer(request, fault, request_id)
            dropped = fault is not None and fault.kind == "drop"
            self._record(request, None if dropped else response.status)
            if dropped:
                return _Response(0, b"", (), drop=True)
            return response

    def _record(self, request: _Request, status: int | None) -> None:
        self._requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                json=request.parsed_json(),
                status=status,
            )
        )

    def _answer(self, request: _Request, fault: Fault | None, request_id: str) -> _Response:
        headers = request.headers
        caller, denied = self._authenticate(request)
        if not headers.get("user-agent"):
            # "Requests without a valid User-Agent header will be rejected." [D-troubleshoot]
            text = (
                "Request forbidden by administrative rules. Please make sure your request has a "
                f"User-Agent header ({_DOC_USER_AGENT}). Check https://developer.github.com for "
                "other possible causes.\n"
            )
            return _Response(
                403,
                text.encode(),
                (
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-GitHub-Request-Id", request_id),
                ),
            )
        version = headers.get("x-github-api-version", DEFAULT_API_VERSION)
        if version not in SUPPORTED_API_VERSIONS:
            listed = ", ".join(
                f'"{v}"' + (" (most recent)" if i == 0 else "")
                for i, v in enumerate(SUPPORTED_API_VERSIONS)
            )
            message = (
                f'The version you specified in the "X-GitHub-API-Version" request header, '
                f'"{version}", is not a supported version. The following versions are currently '
                f"supported: {listed}."
            )
            return self._finish(request, _Reply(400, _error(400, message)), caller, request_id)
        if fault is not None and fault.kind == "status" and fault.status in (502, 504):
            # The edge answers these itself: no rate-limit headers, a pretty-printed body and
            # a bare content type, as recorded in octokit/request.js#589.
            edge = (("Content-Type", "application/json"), ("X-GitHub-Request-Id", request_id))
            return _Response(fault.status, b'{\n  "message": "Server Error"\n}\n', edge)
        if fault is not None and fault.kind != "drop":
            reply = self._fault_reply(request, fault, caller, request_id)
            limited = fault.kind == "primary_rate_limit"
            return self._finish(
                request, reply, caller, request_id, limited=limited, reset_in=fault.reset_in
            )
        if denied is not None:
            return self._finish(request, denied, caller, request_id)
        # GET /rate_limit neither counts nor is refused [D-ratelimits].
        counted = request.path != "/rate_limit"
        bucket = self._bucket(caller)
        if counted and bucket.used >= bucket.limit:
            return self._finish(request, self._primary_reply(caller, bucket), caller, request_id)
        reply = self._route(request, caller, request_id)
        return self._finish(request, reply, caller, request_id, count=counted)

    def _fault_reply(
        self, request: _Request, fault: Fault, caller: _Caller, request_id: str
    ) -> _Reply:
        if fault.kind == "status":
            status = fault.status or 500
            message = _STATUS_MESSAGES.get(status) or HTTPStatus(status).phrase
            return _Reply(status, _error(status, message))
        if fault.kind == "primary_rate_limit":
            reply = self._primary_reply(caller, self._bucket(caller))
            reply.status = fault.status or 403
            return reply
        if fault.kind == "secondary_rate_limit":
            status = fault.status or 403
            retry_after = 60 if fault.retry_after is None else fault.retry_after
            message = _SECONDARY_MESSAGE.format(request_id=request_id)
            return _Reply(
                status,
                _error(status, message, _DOC_SECONDARY),
                [("Retry-After", str(retry_after))],
            )
        doc = _DOC_UPDATE if request.method == "PATCH" else _DOC_CREATE
        return _validation_failed(doc, dict(_TOO_LONG))  # body_too_long

    def _primary_reply(self, caller: _Caller, bucket: _Token) -> _Reply:
        if caller.token is None:
            who = (
                f"{caller.key}. (But here's the good news: Authenticated requests get a higher "
                "rate limit. Check out the documentation for more details.)"
            )
        elif caller.token.installation_id is not None:
            who = f"installation ID {caller.token.installation_id}."
        else:
            who = f"user ID {caller.token.account.id}."
        return _Reply(403, _error(403, f"API rate limit exceeded for {who}", _DOC_RATE))

    def _authenticate(self, request: _Request) -> tuple[_Caller, _Reply | None]:
        anonymous = _Caller(token=None, key="127.0.0.1")
        value = request.headers.get("authorization", "")
        if not value:
            return anonymous, _Reply(401, _error(401, "Requires authentication"))
        scheme, _, credential = value.strip().partition(" ")
        token = self._tokens.get(credential.strip())
        if scheme.lower() not in ("token", "bearer") or token is None:
            return anonymous, _Reply(401, _error(401, "Bad credentials"))
        return _Caller(token=token, key=credential.strip()), None

    def _bucket(self, caller: _Caller) -> _Token:
        if caller.token is not None:
            bucket = caller.token
        else:
            bucket = self._anonymous.setdefault(
                caller.key,
                _Token(Account("", 0, "User"), False, ANONYMOUS_RATE_LIMIT, None),
            )
        self._roll_window(bucket)
        return bucket

    def _finish(
        self,
        request: _Request,
        reply: _Reply,
        caller: _Caller | None,
        request_id: str,
        *,
        count: bool = False,
        limited: bool = False,
        reset_in: int | None = None,
    ) -> _Response:
        status = reply.status
        headers: list[tuple[str, str]] = []
        if status == 204:
            body = b""
        else:
            body = json.dumps(reply.payload, separators=(",", ":"), ensure_ascii=False).encode()
            headers.append(("Content-Type", "application/json; charset=utf-8"))
        if status in (200, 201):
            # As recorded in @octokit/fixtures: an ETag and a private cache on every answer with
            # an object, none on errors or 204.
            etag = f'"{hashlib.sha256(body).hexdigest()}"'
            headers += [("Cache-Control", "private, max-age=60, s-maxage=60"), ("ETag", etag)]
            headers.append(("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP"))
            asked = request.headers.get("if-none-match", "").removeprefix("W/")
            if request.method == "GET" and asked == etag:
                # A 304 does not count against the primary limit [D-bestpractices].
                status, body, count = 304, b"", False
        if caller is not None:
            bucket = self._bucket(caller)
            if count:
                bucket.used += 1
            remaining = bucket.limit - bucket.used
            reset = bucket.window_reset
            used = bucket.used
            if limited:
                remaining, used = 0, bucket.limit
                reset = int(time.time()) + (60 if reset_in is None else reset_in)
            elif remaining <= 0:
                remaining = 0
            headers += [
                ("X-RateLimit-Limit", str(bucket.limit)),
                ("X-RateLimit-Remaining", str(remaining)),
                ("X-RateLimit-Reset", str(reset)),
                ("X-RateLimit-Used", str(used)),
                ("X-RateLimit-Resource", "core"),
            ]
        version = request.headers.get("x-github-api-version", DEFAULT_API_VERSION)
        if version in SUPPORTED_API_VERSIONS:
            headers.append(("X-GitHub-Api-Version-Selected", version))
        headers += reply.headers
        headers += _STATIC_HEADERS
        headers.append(("X-GitHub-Request-Id", request_id))
        return _Response(status, body, tuple(headers))

    def _route(self, request: _Request, caller: _Caller, request_id: str) -> _Reply:
        for method, pattern, route in _ROUTES:
            matched = pattern.fullmatch(request.path)
            if matched is None:
                continue
            if method != request.method:
                continue
            params = {k: v for k, v in matched.groupdict().items() if v is not None}
            params["request_id"] = request_id
            return route(self, request, caller, params)
        return _not_found()

    def _repo_in(self, params: Mapping[str, str]) -> _Repo | None:
        if "repo_id" in params:
            return self._repo_by_id(int(params["repo_id"]))
        return self._repo_for(f"{params['owner']}/{params['name']}")

    # --- routes ----------------------------------------------------------------------------

    def _get_user(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        token = caller.token
        assert token is not None
        if token.installation_id is not None:
            # An installation token has no user: peter-evans falls back to github-actions[bot].
            return _Reply(403, _error(403, "Resource not accessible by integration", _DOC_USER))
        created = "2011-01-25T18:44:36Z"
        return _Reply(200, objects.private_user(self._site, token.account, created))

    def _get_rate_limit(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        bucket = self._bucket(caller)
        return _Reply(
            200,
            objects.rate_limit_overview(
                limit=bucket.limit,
                remaining=max(bucket.limit - bucket.used, 0),
                reset=bucket.window_reset,
                used=bucket.used,
                version=_version(request),
            ),
        )

    def _list_comments(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo = self._repo_in(params)
        number = int(params["number"])
        if repo is None or number not in repo.pulls:
            return _not_found(_DOC_LIST)
        comments = self._comments_on(repo, number)
        since = dict(request.query).get("since")
        if since:
            comments = [c for c in comments if c.info.updated_at >= _normalise_time(since)]
        items = [objects.issue_comment(self._site, repo.info, c.info) for c in comments]
        base = f"/repositories/{repo.info.id}/issues/{number}/comments"
        return self._page(request, items, base)

    def _create_comment(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo = self._repo_in(params)
        number = int(params["number"])
        if repo is None or number not in repo.pulls:
            return _not_found(_DOC_CREATE)
        token = caller.token
        assert token is not None
        denied = self._write_denied(token, _DOC_CREATE)
        if denied is not None:
            return denied
        body, invalid = _comment_body(request, _DOC_CREATE)
        if invalid is not None:
            return invalid
        limited = self._content_limited(token, params["request_id"])
        if limited is not None:
            return limited
        token.created.append(time.monotonic())
        association = "OWNER" if token.account.login == repo.info.owner.login else "NONE"
        info = self._store_comment(repo, number, body, token.account, association)
        payload = objects.issue_comment(self._site, repo.info, info)
        return _Reply(201, payload, [("Location", payload["url"]), *_ACCEPTED_WRITE])

    def _comment_in(self, params: Mapping[str, str]) -> tuple[_Repo | None, _Comment | None]:
        repo = self._repo_in(params)
        comment = self._comments.get(int(params["comment_id"]))
        if repo is None or comment is None or comment.repo != repo.info.full_name.lower():
            return repo, None
        return repo, comment

    def _get_comment(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo, comment = self._comment_in(params)
        if repo is None or comment is None:
            return _not_found(_DOC_GET)
        return _Reply(200, objects.issue_comment(self._site, repo.info, comment.info))

    def _update_comment(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo, comment = self._comment_in(params)
        if repo is None or comment is None:
            return _not_found(_DOC_UPDATE)
        assert caller.token is not None
        denied = self._write_denied(caller.token, _DOC_UPDATE)
        if denied is not None:
            return denied
        body, invalid = _comment_body(request, _DOC_UPDATE)
        if invalid is not None:
            return invalid
        comment.info = _replace_comment(comment.info, body=body, updated_at=_now())
        payload = objects.issue_comment(self._site, repo.info, comment.info)
        return _Reply(200, payload, list(_ACCEPTED_WRITE))

    def _delete_comment(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo, comment = self._comment_in(params)
        if repo is None or comment is None:
            return _not_found(_DOC_DELETE)
        assert caller.token is not None
        denied = self._write_denied(caller.token, _DOC_DELETE)
        if denied is not None:
            return denied
        del self._comments[comment.info.id]
        pull = repo.pulls[comment.info.issue_number]
        repo.pulls[pull.number] = _replace_pull(pull, comments=pull.comments - 1)
        return _Reply(204, None)

    def _commit_pulls(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo = self._repo_in(params)
        if repo is None:
            return _not_found(_DOC_COMMIT_PULLS)
        sha = params["sha"]
        if sha not in repo.commits:
            return _Reply(422, _error(422, f"No commit found for SHA: {sha}", _DOC_COMMIT_PULLS))
        found = [
            objects.pull_request_simple(self._site, repo.info, p, _version(request))
            for p in sorted(repo.pulls.values(), key=lambda p: p.number)
            if sha in (p.head_sha, p.merge_commit_sha)
        ]
        return self._page(request, found, f"/repositories/{repo.info.id}/commits/{sha}/pulls")

    def _get_pull(self, request: _Request, caller: _Caller, params: dict[str, str]) -> _Reply:
        repo = self._repo_in(params)
        number = int(params["number"])
        if repo is None or number not in repo.pulls:
            return _not_found(_DOC_PULL)
        pull = objects.pull_request(self._site, repo.info, repo.pulls[number], _version(request))
        return _Reply(200, pull)

    # --- shared by routes --------------------------------------------------------------------

    def _write_denied(self, token: _Token, doc: str) -> _Reply | None:
        if token.can_write:
            return None
        # A read-only GITHUB_TOKEN (fork PR) or a fine-grained PAT without the permission.
        who = "integration" if token.installation_id is not None else "personal access token"
        return _Reply(
            403, _error(403, f"Resource not accessible by {who}", doc), list(_ACCEPTED_WRITE)
        )

    def _content_limited(self, token: _Token, request_id: str) -> _Reply | None:
        now = time.monotonic()
        longest = max((window for _limit, window in self._content_limits), default=0.0)
        while token.created and token.created[0] <= now - longest:
            token.created.popleft()
        for limit, window in self._content_limits:
            recent = [t for t in token.created if t > now - window]
            if len(recent) >= limit:
                wait = math.ceil(recent[0] + window - now)
                message = _CONTENT_MESSAGE.format(request_id=request_id)
                return _Reply(
                    403,
                    _error(403, message, _DOC_SECONDARY),
                    [("Retry-After", str(max(wait, 1)))],
                )
        return None

    def _page(self, request: _Request, items: list[Json], link_path: str) -> _Reply:
        """One page of `items`, with the `Link` header GitHub writes (absolute URLs).

        GitHub's links keep the request's other parameters in order and put `page` last; they
        name the repository by id (`/repositories/{id}/…`), as recorded in @octokit/fixtures'
        paginate-issues scenario, in the order prev, next, last, first.
        """
        query = dict(request.query)
        per_page = min(_page_number(query.get("per_page"), 30), 100)
        page = _page_number(query.get("page"), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        links: list[tuple[int, str]] = []
        if page > 1:
            links.append((min(page - 1, last), "prev"))
        if page < last:
            links += [(page + 1, "next"), (last, "last")]
        if page > 1:
            links.append((1, "first"))
        kept = [(k, v) for k, v in request.query if k != "page"]
        header = ", ".join(
            f'<{self.url}{link_path}?{urlencode([*kept, ("page", str(n))])}>; rel="{rel}"'
            for n, rel in links
        )
        return _Reply(200, chunk, [("Link", header)] if header else [])


_ACCEPTED_WRITE = [("X-Accepted-GitHub-Permissions", "issues=write; pull_requests=write")]


def _comment_body(request: _Request, doc: str) -> tuple[str, _Reply | None]:
    """The `body` of a create or update, or GitHub's 400/422 for a bad request body."""
    if request.body.strip():
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return "", _Reply(400, _error(400, "Problems parsing JSON", doc))
    else:
        data = {}
    if not isinstance(data, dict):
        shown = json.dumps(data)
        message = f"Invalid request.\n\nFor 'links/0/schema', {shown} is not an object."
        return "", _Reply(422, _error(422, message, doc))
    if "body" not in data:
        return "", _Reply(422, _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.', doc))
    body = data["body"]
    if not isinstance(body, str):
        shown = "nil" if body is None else json.dumps(body)
        message = f"Invalid request.\n\nFor 'properties/body', {shown} is not a string."
        return "", _Reply(422, _error(422, message, doc))
    if not body.strip():
        missing = {"resource": "IssueComment", "code": "missing_field", "field": "body"}
        return "", _validation_failed(doc, missing)
    if len(body) > MAX_COMMENT_CHARS:
        return "", _validation_failed(doc, dict(_TOO_LONG))
    return body, None


def _version(request: _Request) -> str:
    return request.headers.get("x-github-api-version", DEFAULT_API_VERSION)


def _normalise_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _replace_pull(pull: PullInfo, *, comments: int) -> PullInfo:
    return replace(pull, comments=comments)


def _replace_comment(comment: CommentInfo, *, body: str, updated_at: str) -> CommentInfo:
    return replace(comment, body=body, updated_at=updated_at)


_REPO = r"(?:/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)|/repositories/(?P<repo_id>\d+))"
_ROUTES: tuple[tuple[str, re.Pattern[str], Route], ...] = (
    ("GET", re.compile(r"/user"), FakeGitHub._get_user),
    ("GET", re.compile(r"/rate_limit"), FakeGitHub._get_rate_limit),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), FakeGitHub._list_comments),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>\d+)/comments"), FakeGitHub._create_comment),
    ("GET", re.compile(_REPO + r"/issues/comments/(?P<comment_id>\d+)"), FakeGitHub._get_comment),
    (
        "PATCH",
        re.compile(_REPO + r"/issues/comments/(?P<comment_id>\d+)"),
        FakeGitHub._update_comment,
    ),
    (
        "DELETE",
        re.compile(_REPO + r"/issues/comments/(?P<comment_id>\d+)"),
        FakeGitHub._delete_comment,
    ),
    ("GET", re.compile(_REPO + r"/commits/(?P<sha>[^/]+)/pulls"), FakeGitHub._commit_pulls),
    ("GET", re.compile(_REPO + r"/pulls/(?P<number>\d+)"), FakeGitHub._get_pull),
)


class _Server(ThreadingHTTPServer):
    """Loopback only, a thread per connection; a client that hung up is not an error."""

    daemon_threads = True

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return  # e.g. a client timed out on a slow answer and closed its end
        if isinstance(error, Exception):
            self.fake._crashed(error)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the fake answer it, writes the answer (or drops the line)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as api.github.com; every answer has a length

    def version_string(self) -> str:
        return "GitHub.com"  # the Server header api.github.com sends

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the fake records requests itself; stderr noise would drown test output

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        try:
            response = fake._handle(request)
        except Exception as error:
            # A bug in the fake must fail the test, not pass for a network error: answer 500
            # with the cause now, and raise it again when the fake closes.
            fake._crashed(error)
            body = json.dumps({"message": f"the fake GitHub crashed: {error!r}"}).encode()
            response = _Response(500, body, (("Content-Type", "application/json"),))
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)  # adds Server and Date
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve


def iter_links(header: str) -> Iterator[tuple[str, str]]:
    """(rel, url) pairs of a `Link` header, in order: a helper for tests."""
    for part in header.split(","):
        matched = re.fullmatch(r'\s*<([^>]*)>;\s*rel="([^"]+)"\s*', part)
        if matched:
            yield matched.group(2), matched.group(1)
