"""hmig's GitHub client and sticky comment against the fake GitHub, over real HTTP on loopback.

`tests/fakegithub` answers as GitHub does (pagination through absolute `Link` URLs, rate-limit
headers, its 403/422 bodies) and injects faults. The client gets a `sleep` that records what it
was asked to wait instead of waiting, so rate limits and backoff are asserted exactly without
slowing the suite; the only real waits are the read timeouts of the slow-answer tests.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from hmig.errors import CommentTooLong, GitHubError, GitHubNotPermitted
from hmig.github import comments
from hmig.github.client import API_VERSION, GitHubClient, RetryPolicy, Timeouts
from hmig.github.comments import Action
from tests.fakegithub import FakeGitHub, Fault
from tests.fakegithub.server import Recorded, _Response

REPO = "org/app"
HEAD = "a" * 40
MERGE = "b" * 40
BOT = "ghs_0123456789abcdefBOTtoken"
READ_ONLY = "ghs_0123456789abcdefREADonly"
PAT = "ghp_0123456789abcdefPATtoken"


def _marker(key: str) -> str:
    """A marker as `hmig.markdown.marker` writes it; the adapter takes any one-line comment."""
    return f"<!-- hmig:comment environment={key} -->"


PROD = _marker("production")
STAGING = _marker("staging")
COMMENTS = f"/repos/{REPO}/issues/7/comments"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_token(BOT, login="github-actions[bot]", type="Bot", can_write=True)
        fake.add_token(READ_ONLY, login="github-actions[bot]", type="Bot", can_write=False)
        fake.add_token(PAT, login="octocat", type="User")
        fake.add_pull(REPO, 7, head_sha=HEAD, merge_commit_sha=MERGE, state="open")
        yield fake


class Waits(list[float]):
    """The `sleep` handed to the client: records each wait, waits for none."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(gh: FakeGitHub, token: str = BOT, **options: Any) -> tuple[GitHubClient, Waits]:
    waits = Waits()
    options.setdefault("retry", RetryPolicy(write_interval_s=0))
    return GitHubClient(api_url=gh.url, token=token, sleep=waits, **options), waits


def upsert(api: GitHubClient, body: str, *, marker: str = PROD, **options: Any) -> comments.Posted:
    options.setdefault("author", "github-actions[bot]")
    return comments.upsert(api, repository=REPO, number=7, marker=marker, body=body, **options)


def calls(gh: FakeGitHub) -> list[tuple[str, str, int | None]]:
    """(method, path with page, status) of every request, in order."""
    out = []
    for r in gh.requests:
        page = f"?page={r.query['page']}" if "page" in r.query else ""
        out.append((r.method, r.path.replace("/repositories/", "/r/") + page, r.status))
    return out


def comment_calls(gh: FakeGitHub) -> list[Recorded]:
    return [r for r in gh.requests if "/comments" in r.path]


def add_others(gh: FakeGitHub, count: int) -> None:
    for i in range(count):
        gh.add_comment(REPO, 7, f"LGTM {i}", login=f"reviewer{i % 7}")


# --- requests and identity -------------------------------------------------------------------


def test_every_request_carries_githubs_headers(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    upsert(api, "plan")
    assert gh.requests
    for request in gh.requests:
        assert request.headers["authorization"] == f"Bearer {BOT}"
        assert request.headers["x-github-api-version"] == API_VERSION == "2022-11-28"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["user-agent"].startswith("hmig/")


def test_an_enterprise_api_root_keeps_its_path(gh: FakeGitHub) -> None:
    # GHES serves the API under /api/v3; the fake does not, so the call ends in a 404 that
    # names the path the client really used.
    api = GitHubClient(api_url=gh.url + "/api/v3/", token=BOT, sleep=Waits())
    with pytest.raises(GitHubError) as caught:
        api.get("/user")
    assert [r.path for r in gh.requests] == ["/api/v3/user"]
    assert caught.value.status == 404


def test_an_installation_token_is_github_actions_bot(gh: FakeGitHub) -> None:
    api, waits = client(gh)
    assert comments.our_login(api) == "github-actions[bot]"
    assert calls(gh) == [("GET", "/user", 403)]  # asked once, the 403 not retried
    assert waits == []


def test_another_apps_bot_can_be_named(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    assert comments.our_login(api, bot_login="hmig-deployer[bot]") == "hmig-deployer[bot]"


def test_a_personal_token_is_its_user(gh: FakeGitHub) -> None:
    api, _ = client(gh, PAT)
    assert comments.our_login(api) == "octocat"


def test_a_wrong_token_is_an_error_not_a_guess(gh: FakeGitHub) -> None:
    api, _ = client(gh, "ghp_not_a_token_the_fake_knows")
    with pytest.raises(GitHubError) as caught:
        comments.our_login(api)
    assert caught.value.status == 401
    assert "Bad credentials" in caught.value.message


# --- the sticky comment -------------------------------------------------------------------


def test_find_or_create_reads_every_page_once_and_never_duplicates(gh: FakeGitHub) -> None:
    add_others(gh, 150)
    api, _ = client(gh)

    created = upsert(api, "## Plan\n3 pending")
    assert created.action is Action.CREATED
    assert [c[:2] for c in calls(gh)] == [
        ("GET", COMMENTS),
        ("GET", "/r/" + gh.requests[1].path.split("/repositories/")[1] + "?page=2"),
        ("POST", COMMENTS),
    ]
    assert gh.requests[0].query == {"per_page": "100"}
    assert gh.requests[1].query == {"per_page": "100", "page": "2"}
    assert created.comment is not None
    assert created.comment.body == f"{PROD}\n## Plan\n3 pending"

    gh.clear_requests()
    updated = upsert(api, "## Plan\n2 pending")
    assert updated.action is Action.UPDATED
    assert updated.comment is not None
    assert updated.comment.id == created.comment.id  # in place
    assert [r.method for r in gh.requests] == ["GET", "GET", "PATCH"]

    gh.clear_requests()
    unchanged = upsert(api, "## Plan\n2 pending")
    assert unchanged.action is Action.UNCHANGED
    assert [r.method for r in gh.requests] == ["GET", "GET"]  # no PATCH

    ours = [c for c in gh.comments(REPO, 7) if c["body"].startswith(PROD)]
    assert len(gh.comments(REPO, 7)) == 151
    assert [c["body"] for c in ours] == [f"{PROD}\n## Plan\n2 pending"]


def test_an_early_comment_costs_one_page(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    upsert(api, "first")
    add_others(gh, 150)
    gh.clear_requests()
    assert upsert(api, "second").action is Action.UPDATED
    assert [r.method for r in gh.requests] == ["GET", "PATCH"]


def test_another_bots_comment_with_our_marker_is_never_touched(gh: FakeGitHub) -> None:
    theirs = f"{PROD}\nAnother tool, same marker."
    gh.add_comment(REPO, 7, theirs, login="other-tool[bot]", type="Bot")
    api, _ = client(gh)
    first = upsert(api, "ours")
    second = upsert(api, "ours, updated")
    bodies = [c["body"] for c in gh.comments(REPO, 7)]
    assert bodies == [theirs, f"{PROD}\nours, updated"]
    assert (first.action, second.action) == (Action.CREATED, Action.UPDATED)
    assert not [r for r in gh.requests if r.method == "PATCH" and r.json["body"] == theirs]


def test_a_user_quoting_or_copying_the_marker_is_never_touched(gh: FakeGitHub) -> None:
    quoting = f"> {PROD}\n> 3 pending\nWhy three?"
    copying = f"{PROD}\nI pasted the whole comment."
    gh.add_comment(REPO, 7, quoting, login="someone")
    gh.add_comment(REPO, 7, copying, login="someone")
    api, _ = client(gh)
    upsert(api, "ours")
    assert [c["body"] for c in gh.comments(REPO, 7)] == [quoting, copying, f"{PROD}\nours"]


def test_our_own_comment_quoting_another_marker_is_not_that_ones(gh: FakeGitHub) -> None:
    # staging's comment shows migration text that happens to contain production's marker.
    api, _ = client(gh)
    upsert(api, f"```sql\n-- {PROD}\n```", marker=STAGING)
    production = upsert(api, "production plan")
    assert production.action is Action.CREATED
    bodies = [c["body"] for c in gh.comments(REPO, 7)]
    assert bodies == [f"{STAGING}\n```sql\n-- {PROD}\n```", f"{PROD}\nproduction plan"]


def test_environments_have_their_own_comments(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    upsert(api, "p1")
    upsert(api, "s1", marker=STAGING)
    upsert(api, "p2")
    upsert(api, "s2", marker=STAGING)
    assert [c["body"] for c in gh.comments(REPO, 7)] == [f"{PROD}\np2", f"{STAGING}\ns2"]


def test_a_personal_token_finds_its_users_comment_not_the_bots(gh: FakeGitHub) -> None:
    bots = f"{PROD}\nfrom GITHUB_TOKEN"
    gh.add_comment(REPO, 7, bots, login="github-actions[bot]", type="Bot")
    api, _ = client(gh, PAT)
    login = comments.our_login(api)
    upsert(api, "from a PAT", author=login)
    upsert(api, "from a PAT, again", author=login)
    found = [(c["user"]["login"], c["body"]) for c in gh.comments(REPO, 7)]
    assert found == [
        ("github-actions[bot]", bots),
        ("octocat", f"{PROD}\nfrom a PAT, again"),
    ]


def test_a_body_that_already_starts_with_the_marker_keeps_one(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    upsert(api, f"{PROD}\nrendered with its marker")
    assert [c["body"] for c in gh.comments(REPO, 7)] == [f"{PROD}\nrendered with its marker"]


def test_without_create_a_missing_comment_stays_missing(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    skipped = upsert(api, "nothing pending", create=False)
    assert (skipped.action, skipped.url) == (Action.SKIPPED, None)
    assert [r.method for r in gh.requests] == ["GET"]
    upsert(api, "3 pending")
    assert upsert(api, "nothing pending", create=False).action is Action.UPDATED


def test_a_posted_comment_says_who_github_recorded(gh: FakeGitHub) -> None:
    # Another app's token, taken for GITHUB_TOKEN: the caller can tell which login to set.
    gh.add_token("ghs_app", login="hmig-deployer[bot]", type="Bot")
    api, _ = client(gh, "ghs_app")
    posted = upsert(api, "plan", author=comments.our_login(api))
    assert posted.comment is not None
    assert posted.comment.author == "hmig-deployer[bot]"
    assert posted.url is not None and posted.url.endswith(f"#issuecomment-{posted.comment.id}")


@pytest.mark.parametrize(
    ("repository", "number", "marker"),
    [("org/app/../x", 7, PROD), ("org", 7, PROD), (REPO, 0, PROD), (REPO, 7, "hmig:prod")],
)
def test_bad_arguments_send_nothing(
    gh: FakeGitHub, repository: str, number: int, marker: str
) -> None:
    api, _ = client(gh)
    with pytest.raises(ValueError):
        comments.upsert(
            api, repository=repository, number=number, marker=marker, author="a", body="b"
        )
    assert gh.requests == []


# --- size and permissions ----------------------------------------------------------------


def test_a_body_at_the_limit_is_posted_and_one_past_it_is_not_sent(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    room = comments.MAX_BODY_CHARS - len(PROD) - 1
    at_limit = upsert(api, "😀" * room)  # code points, not bytes
    assert at_limit.action is Action.CREATED
    gh.clear_requests()
    with pytest.raises(CommentTooLong) as caught:
        upsert(api, "x" * (comments.MAX_BODY_CHARS - len(STAGING)), marker=STAGING)
    assert gh.requests == []
    assert "65,536" in caught.value.message


def test_githubs_422_body_too_long_is_a_typed_error(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="body_too_long", method="POST"))
    api, waits = client(gh)
    with pytest.raises(CommentTooLong) as caught:
        upsert(api, "plan")
    assert caught.value.status == 422
    assert "Body is too long (maximum is 65536 characters)" in caught.value.message
    assert [r.method for r in gh.requests].count("POST") == 1  # not retried
    assert waits == []


def test_a_read_only_token_is_not_permitted_and_not_retried(gh: FakeGitHub) -> None:
    api, waits = client(gh, READ_ONLY)
    with pytest.raises(GitHubNotPermitted) as caught:
        upsert(api, "plan")
    assert caught.value.status == 403
    assert "Resource not accessible by integration" in caught.value.message
    assert "pull-requests: write" in caught.value.hint
    assert [(r.method, r.status) for r in gh.requests] == [("GET", 200), ("POST", 403)]
    assert waits == []
    assert gh.comments(REPO, 7) == []


def test_a_read_only_token_cannot_update_either(gh: FakeGitHub) -> None:
    gh.add_comment(REPO, 7, f"{PROD}\nold", login="github-actions[bot]", type="Bot")
    api, _ = client(gh, READ_ONLY)
    with pytest.raises(GitHubNotPermitted):
        upsert(api, "new")
    assert [c["body"] for c in gh.comments(REPO, 7)] == [f"{PROD}\nold"]


# --- retries ---------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_succeeds(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=502, method="GET", path="/comments", times=2))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert [s for _, _, s in calls(gh)] == [502, 502, 200, 201]
    assert waits == [1.0, 2.0]


def test_5xx_that_persists_is_an_error_after_the_attempts(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=503, method="GET", times=10))
    api, waits = client(gh)
    with pytest.raises(GitHubError) as caught:
        upsert(api, "plan")
    assert caught.value.status == 503
    assert "after 4 attempts" in caught.value.message
    assert len(gh.requests) == 4
    assert waits == [1.0, 2.0, 4.0]


def test_5xx_on_an_update_is_retried(gh: FakeGitHub) -> None:
    gh.add_comment(REPO, 7, f"{PROD}\nold", login="github-actions[bot]", type="Bot")
    gh.inject(Fault(kind="status", status=500, method="PATCH"))
    api, waits = client(gh)
    assert upsert(api, "new").action is Action.UPDATED
    assert [(m, s) for m, _, s in calls(gh)] == [("GET", 200), ("PATCH", 500), ("PATCH", 200)]
    assert waits == [1.0]
    assert [c["body"] for c in gh.comments(REPO, 7)] == [f"{PROD}\nnew"]


def test_5xx_on_a_create_looks_before_posting_again(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=500, method="POST"))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert [(m, s) for m, _, s in calls(gh)] == [
        ("GET", 200),
        ("POST", 500),
        ("GET", 200),  # was it created after all? No:
        ("POST", 201),
    ]
    assert waits == [1.0]
    assert len(gh.comments(REPO, 7)) == 1


def test_a_dropped_connection_is_retried(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="drop", method="GET"))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert [(m, s) for m, _, s in calls(gh)] == [("GET", None), ("GET", 200), ("POST", 201)]
    assert waits == [1.0]


def test_a_create_whose_answer_was_lost_is_not_posted_twice(gh: FakeGitHub) -> None:
    # GitHub applied the POST; only the answer never arrived.
    add_others(gh, 120)
    gh.inject(Fault(kind="drop", method="POST", after_write=True))
    api, waits = client(gh)
    posted = upsert(api, "plan")
    assert posted.action is Action.CREATED
    assert [r.method for r in gh.requests].count("POST") == 1
    ours = [c for c in gh.comments(REPO, 7) if c["body"].startswith(PROD)]
    assert len(ours) == 1
    assert posted.comment is not None and posted.comment.id == ours[0]["id"]
    assert waits == [1.0]


def test_a_create_dropped_before_github_applied_it_is_posted_again(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="drop", method="POST"))
    api, _ = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert [(m, s) for m, _, s in calls(gh)] == [
        ("GET", 200),
        ("POST", None),
        ("GET", 200),
        ("POST", 201),
    ]
    assert len(gh.comments(REPO, 7)) == 1


def test_a_slow_answer_hits_the_read_timeout_and_is_retried(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="slow", method="GET", path="/comments", delay_s=5))
    api, waits = client(gh, timeouts=Timeouts(connect_s=5, read_s=0.5))
    assert upsert(api, "plan").action is Action.CREATED
    assert waits == [1.0]
    assert [r.method for r in gh.requests if r.status == 201] == ["POST"]


def test_an_answer_that_never_comes_is_an_error(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="slow", method="GET", delay_s=5, times=4))
    api, waits = client(gh, timeouts=Timeouts(connect_s=5, read_s=0.3))
    with pytest.raises(GitHubError, match=r"no answer within 0.3 s \(after 4 attempts\)"):
        comments.find_comment(api, repository=REPO, number=7, marker=PROD, author="x")
    assert waits == [1.0, 2.0, 4.0]


def test_an_unreachable_api_is_an_error_after_the_attempts() -> None:
    with FakeGitHub() as gone:
        url = gone.url
    waits = Waits()
    api = GitHubClient(api_url=url, token=BOT, sleep=waits)
    with pytest.raises(GitHubError, match="connection failed"):
        comments.upsert(api, repository=REPO, number=7, marker=PROD, author="a", body="b")
    assert waits == [1.0, 2.0, 4.0]


# --- rate limits -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_waits_until_the_reset(gh: FakeGitHub, status: int) -> None:
    gh.inject(Fault(kind="primary_rate_limit", status=status, method="GET", reset_in=120))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    limited = gh.requests[0]
    assert limited.status == status
    # Until x-ratelimit-reset (whole seconds, 120 s ahead when the fake answered) and a second.
    assert len(waits) == 1
    assert 119.0 <= waits[0] <= 122.0
    assert [r.status for r in gh.requests[1:]] == [200, 201]


def test_secondary_rate_limit_honours_retry_after(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="secondary_rate_limit", method="POST", retry_after=37))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert waits == [37.0]
    # GitHub refused the first POST outright: posted again directly, no recheck in between.
    assert [(m, s) for m, _, s in calls(gh)] == [("GET", 200), ("POST", 403), ("POST", 201)]
    assert len(gh.comments(REPO, 7)) == 1


def test_a_429_without_retry_after_waits_a_minute_then_longer(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=429, method="GET", times=2))
    api, waits = client(gh)
    assert upsert(api, "plan").action is Action.CREATED
    assert waits == [60.0, 120.0]


def test_a_rate_limit_too_long_to_wait_for_fails_at_once(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="primary_rate_limit", method="GET", reset_in=3000))
    api, waits = client(gh)
    with pytest.raises(GitHubError, match=r"rate limited.*longer than hmig waits") as caught:
        upsert(api, "plan")
    assert caught.value.status == 403
    assert not isinstance(caught.value, GitHubNotPermitted)
    assert waits == []
    assert len(gh.requests) == 1


def test_rate_limits_are_retried_a_bounded_number_of_times(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="secondary_rate_limit", method="GET", retry_after=2, times=10))
    api, waits = client(gh)
    with pytest.raises(GitHubError, match=r"secondary rate limit.*still limited after 3 waits"):
        upsert(api, "plan")
    assert waits == [2.0, 2.0, 2.0]
    assert len(gh.requests) == 4


def test_writes_are_a_second_apart(gh: FakeGitHub) -> None:
    api, waits = client(gh, retry=RetryPolicy())
    upsert(api, "p1")
    upsert(api, "s1", marker=STAGING)
    # Before the second write the client waited out the rest of the second since the first.
    assert len(waits) == 1
    assert 0.0 < waits[0] <= 1.0


class _CountingFake(FakeGitHub):
    """The fake, counting how many requests it handles at once."""

    def __init__(self) -> None:
        super().__init__()
        self._count_lock = threading.Lock()
        self.in_flight = 0
        self.most_at_once = 0

    def _handle(self, request: Any) -> Any:
        with self._count_lock:
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            time.sleep(0.01)  # widen the window in which an overlapping request would show
            return super()._handle(request)
        finally:
            with self._count_lock:
                self.in_flight -= 1


def test_one_client_sends_one_request_at_a_time_whatever_the_threads() -> None:
    with _CountingFake() as fake:
        fake.add_token(BOT, login="github-actions[bot]", type="Bot")
        fake.add_pull(REPO, 7, head_sha=HEAD)
        api, _ = client(fake)
        errors: list[BaseException] = []

        def post(environment: str) -> None:
            try:
                for round_ in range(3):
                    upsert(api, f"{environment} {round_}", marker=_marker(environment))
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(f"env{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert fake.most_at_once == 1
        bodies = sorted(c["body"] for c in fake.comments(REPO, 7))
        assert bodies == [f"{_marker(f'env{i}')}\nenv{i} 2" for i in range(4)]


# --- the token stays secret ----------------------------------------------------------------


def _everything_shown(exc: BaseException) -> str:
    """str, repr, hint and the formatted traceback of the error and every error behind it."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), str(getattr(seen, "hint", ""))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("token", "fault"),
    [
        (READ_ONLY, None),
        ("ghp_unknown_0123456789abcdef", None),
        (BOT, Fault(kind="status", status=503, times=10)),
        (BOT, Fault(kind="drop", method="GET", times=10)),
        (BOT, Fault(kind="body_too_long", method="POST")),
        (BOT, Fault(kind="primary_rate_limit", reset_in=3000)),
    ],
    ids=["not-permitted", "bad-token", "5xx", "dropped", "too-long", "rate-limited"],
)
def test_the_token_never_appears_in_an_error(
    gh: FakeGitHub, token: str, fault: Fault | None
) -> None:
    if fault is not None:
        gh.inject(fault)
    api, _ = client(gh, token)
    assert token not in repr(api)
    with pytest.raises(GitHubError) as caught:
        upsert(api, "plan")
    shown = _everything_shown(caught.value)
    assert token not in shown
    assert token[4:] not in shown  # not even without its prefix


class _EchoingProxy(FakeGitHub):
    """A proxy in front of GitHub (GHES setups have them) that quotes the request in its error."""

    def _handle(self, request: Any) -> Any:
        body = json.dumps({"message": f"Blocked request with headers {request.headers}"})
        return _Response(400, body.encode(), (("Content-Type", "application/json"),))


def test_the_token_is_cut_from_an_answer_that_quotes_it() -> None:
    with _EchoingProxy() as proxy:
        api = GitHubClient(api_url=proxy.url, token=BOT, sleep=Waits())
        with pytest.raises(GitHubError) as caught:
            api.get("/user")
    shown = _everything_shown(caught.value)
    assert "Blocked request with headers" in shown
    assert "Bearer <redacted>" in shown
    assert BOT not in shown


def test_the_token_never_appears_when_the_api_is_unreachable() -> None:
    with FakeGitHub() as gone:
        url = gone.url
    api = GitHubClient(api_url=url, token=BOT, sleep=Waits())
    with pytest.raises(GitHubError) as caught:
        api.get("/user")
    assert BOT not in _everything_shown(caught.value)


def test_a_client_without_a_token_is_refused() -> None:
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHubClient(api_url="http://127.0.0.1:9", token="")


# --- pull requests ---------------------------------------------------------------------------


def test_the_pull_requests_of_a_pushed_commit(gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 8, head_sha="c" * 40, merge_commit_sha="d" * 40, state="closed", merged=True)
    gh.add_pull(REPO, 9, head_sha="e" * 40)
    api, _ = client(gh)
    [merged] = comments.pulls_for_commit(api, repository=REPO, sha="d" * 40)
    assert (merged.number, merged.state, merged.merged) == (8, "closed", True)
    assert merged.merge_commit_sha == "d" * 40
    [open_] = comments.pulls_for_commit(api, repository=REPO, sha=HEAD)
    assert (open_.number, open_.merged, open_.head_sha) == (7, False, HEAD)
    assert gh.requests[0].query == {"per_page": "100"}


def test_a_commit_github_does_not_know_is_an_error(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    with pytest.raises(GitHubError) as caught:
        comments.pulls_for_commit(api, repository=REPO, sha="f" * 40)
    assert caught.value.status == 422


def test_a_pull_request_by_number(gh: FakeGitHub) -> None:
    api, _ = client(gh)
    pull = comments.get_pull(api, repository=REPO, number=7)
    assert (pull.number, pull.state, pull.head_sha, pull.merged) == (7, "open", HEAD, False)
    assert comments.pull_head_sha(api, repository=REPO, number=7) == HEAD
    with pytest.raises(GitHubError) as caught:
        comments.get_pull(api, repository=REPO, number=99)
    assert caught.value.status == 404
