"""The fake GitHub (tests/fakegithub) against GitHub's own descriptions and recordings.

Real HTTP on loopback with `requests`. Answers are validated against GitHub's OpenAPI
description (`@octokit/openapi`) and compared with answers GitHub really gave
(`@octokit/fixtures`); both come from tests/fakegithub/node_modules and a missing package fails
the test. Then the behaviour hmig relies on: pagination past 150 comments, each fault kind, the
primary and secondary rate limits, authentication and permission errors, GitHub's validation
errors (65,537 characters), and concurrent requests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakegithub import FakeGitHub, Fault, iter_links, spec

REPO = "org/app"
HEAD = "a" * 40
MERGE = "b" * 40
BOT = "ghs_rw"
READ_ONLY = "ghs_ro"
PAT = "ghp_user"
LIMIT = 65536

TOO_LONG_422 = {
    "message": "Validation Failed",
    "errors": [
        {
            "resource": "IssueComment",
            "code": "unprocessable",
            "field": "data",
            "message": "Body is too long (maximum is 65536 characters)",
        }
    ],
}


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_token(BOT, login="github-actions[bot]", type="Bot", can_write=True)
        fake.add_token(READ_ONLY, login="github-actions[bot]", type="Bot", can_write=False)
        fake.add_token(PAT, login="octocat", type="User")
        fake.add_pull(REPO, 7, head_sha=HEAD, merge_commit_sha=MERGE, state="open")
        yield fake


def call(
    gh: FakeGitHub,
    method: str,
    path: str,
    *,
    token: str | None = BOT,
    scheme: str = "Bearer",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    **kwargs: Any,
) -> requests.Response:
    """One request as hmig's client sends it; `path` may be an absolute URL (a Link)."""
    sent = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token is not None:
        sent["Authorization"] = f"{scheme} {token}"
    sent.update(headers or {})
    url = path if path.startswith("http") else gh.url + path
    return requests.request(method, url, headers=sent, timeout=timeout, **kwargs)


def post_comment(gh: FakeGitHub, body: str, *, token: str = BOT) -> requests.Response:
    return call(gh, "POST", f"/repos/{REPO}/issues/7/comments", token=token, json={"body": body})


def assert_valid(
    operation_id: str, status: int, answer: requests.Response, version: str = "2022-11-28"
) -> None:
    assert answer.status_code == status, answer.text
    validator = spec.response_validator(operation_id, status, version)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(answer.json())
    ]
    assert errors == [], f"{operation_id} {status} breaks GitHub's schema"


def links(answer: requests.Response) -> dict[str, str]:
    return dict(iter_links(answer.headers.get("Link", "")))


def walk(gh: FakeGitHub, first: str) -> list[requests.Response]:
    """Every page, following rel="next" verbatim, as a client must."""
    pages = [call(gh, "GET", first)]
    while "next" in links(pages[-1]):
        assert len(pages) < 50, "pagination does not end"
        pages.append(call(gh, "GET", links(pages[-1])["next"]))
    return pages


def wait_for(condition: Any, what: str) -> None:
    # Waits for the server thread; the deadline only stops a hang, it asserts no timing.
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


# --- GitHub's OpenAPI description -------------------------------------------------------------


def test_githubs_descriptions_are_installed() -> None:
    # scripts/setup installs them; a missing package must fail the suite, never skip it.
    assert spec.OPENAPI.is_file(), "run `npm ci --prefix tests/fakegithub`"
    assert (spec.FIXTURES / "paginate-issues" / "raw-fixture.json").is_file()
    assert spec.openapi()["openapi"].startswith("3.0")


def test_the_schema_check_is_not_vacuous() -> None:
    validator = spec.response_validator("issues/get-comment", 200)
    good = spec.example("issue-comment")
    assert list(validator.iter_errors(good)) == []
    broken: list[dict[str, Any]] = [
        {k: v for k, v in good.items() if k != "user"},
        {**good, "id": None},
        {**good, "created_at": "yesterday"},
        {**good, "author_association": "BOSS"},
        {**good, "user": {**good["user"], "id": "1"}},
        {**good, "html_url": "not a url"},
    ]
    for answer in broken:
        assert list(validator.iter_errors(answer)) != [], answer
    # nullable: GitHub documents `user` as nullable-simple-user, so null is allowed.
    assert list(validator.iter_errors({**good, "user": None})) == []
    # Each API version's schemas: 2026-03-10 dropped a pull request's merge_commit_sha.
    assert "merge_commit_sha" in spec.component_schema("pull-request")["properties"]
    newer = spec.component_schema("pull-request", "2026-03-10")
    assert "merge_commit_sha" not in newer["properties"]
    assert "merge_commit_sha" not in newer["required"]


def test_comment_answers_validate_against_the_openapi_description(gh: FakeGitHub) -> None:
    gh.add_comment(REPO, 7, "from someone", login="someone")
    created = post_comment(gh, "<!-- hmig:production -->\nplan")
    assert_valid("issues/create-comment", 201, created)
    listed = call(gh, "GET", f"/repos/{REPO}/issues/7/comments")
    assert_valid("issues/list-comments", 200, listed)
    url = created.json()["url"]
    assert_valid("issues/get-comment", 200, call(gh, "GET", url))
    updated = call(gh, "PATCH", url, json={"body": "new plan"})
    assert_valid("issues/update-comment", 200, updated)
    assert updated.json()["body"] == "new plan"
    assert [c["body"] for c in gh.comments(REPO, 7)] == ["from someone", "new plan"]


def test_comment_objects_carry_every_field_github_describes(gh: FakeGitHub) -> None:
    comment = post_comment(gh, "x").json()
    described = set(spec.component_schema("issue-comment")["properties"])
    # body_text / body_html come only with the text/html media types, which hmig never asks for.
    assert described - set(comment) == {"body_text", "body_html"}
    assert set(comment) - described == set()
    assert set(comment) == set(spec.example("issue-comment")) | {
        "reactions",
        "performed_via_github_app",
    }
    user_fields = set(spec.component_schema("simple-user")["properties"])
    assert set(spec.example("issue-comment")["user"]) <= set(comment["user"]) <= user_fields
    # The author is the token's account: github-actions[bot] with its real id and bot URLs.
    assert comment["user"]["login"] == "github-actions[bot]"
    assert comment["user"]["id"] == 41898282
    assert comment["user"]["type"] == "Bot"
    assert comment["user"]["url"].endswith("/users/github-actions%5Bbot%5D")
    assert comment["html_url"] == f"https://github.com/{REPO}/pull/7#issuecomment-{comment['id']}"
    assert comment["id"] > 2**31, "GitHub's comment ids no longer fit an int32"


def test_pull_answers_validate_against_the_openapi_description(gh: FakeGitHub) -> None:
    for sha in (HEAD, MERGE):
        found = call(gh, "GET", f"/repos/{REPO}/commits/{sha}/pulls")
        assert_valid("repos/list-pull-requests-associated-with-commit", 200, found)
        assert [p["number"] for p in found.json()] == [7]
    pull = call(gh, "GET", f"/repos/{REPO}/pulls/7")
    assert_valid("pulls/get", 200, pull)
    assert pull.json()["head"]["sha"] == HEAD
    assert pull.json()["merge_commit_sha"] == MERGE


@pytest.mark.parametrize("version", ["2022-11-28", "2026-03-10"])
def test_answers_follow_the_requested_api_version(gh: FakeGitHub, version: str) -> None:
    headers = {"X-GitHub-Api-Version": version}

    def described(name: str) -> set[str]:
        return set(spec.component_schema(name, version)["properties"])

    pull = call(gh, "GET", f"/repos/{REPO}/pulls/7", headers=headers)
    assert_valid("pulls/get", 200, pull, version)
    assert set(pull.json()) <= described("pull-request")
    assert set(pull.json()["base"]["repo"]) <= described("repository")
    found = call(gh, "GET", f"/repos/{REPO}/commits/{MERGE}/pulls", headers=headers)
    assert_valid("repos/list-pull-requests-associated-with-commit", 200, found, version)
    assert set(found.json()[0]) <= described("pull-request-simple")
    overview = call(gh, "GET", "/rate_limit", headers=headers)
    assert_valid("rate-limit/get", 200, overview, version)
    assert set(overview.json()) <= described("rate-limit-overview")
    comment = post_comment(gh, "x")
    assert_valid("issues/create-comment", 201, comment, version)
    assert ("merge_commit_sha" in pull.json()) == (version == "2022-11-28")


def test_user_answers_validate_against_the_openapi_description(gh: FakeGitHub) -> None:
    me = call(gh, "GET", "/user", token=PAT)
    assert_valid("users/get-authenticated", 200, me)
    assert me.json()["login"] == "octocat"
    # An installation token (GITHUB_TOKEN) has no user behind it.
    bot = call(gh, "GET", "/user", token=BOT)
    assert_valid("users/get-authenticated", 403, bot)
    assert bot.json()["message"] == "Resource not accessible by integration"
    assert_valid("rate-limit/get", 200, call(gh, "GET", "/rate_limit"))


def test_error_bodies_validate_against_the_openapi_description(gh: FakeGitHub) -> None:
    assert_valid("issues/list-comments", 404, call(gh, "GET", f"/repos/{REPO}/issues/8/comments"))
    assert_valid("issues/create-comment", 422, post_comment(gh, "x" * (LIMIT + 1)))
    assert_valid("issues/create-comment", 403, post_comment(gh, "x", token=READ_ONLY))
    assert_valid("users/get-authenticated", 401, call(gh, "GET", "/user", token="nope"))
    url = post_comment(gh, "x").json()["url"]
    assert_valid("issues/update-comment", 422, call(gh, "PATCH", url, json={"body": ""}))
    assert_valid("issues/get-comment", 404, call(gh, "GET", f"/repos/{REPO}/issues/comments/1"))


# --- GitHub's recorded answers (@octokit/fixtures) -------------------------------------------


def test_link_headers_are_written_as_github_wrote_them(gh: FakeGitHub) -> None:
    # paginate-issues: 13 issues read 3 a page; GitHub's links name the repository by id.
    recorded = [
        e for e in spec.fixture("paginate-issues") if e["method"] == "get" and e["status"] == 200
    ]
    assert len(recorded) == 5
    for n in range(13):
        gh.add_comment(REPO, 7, f"comment {n}", login="someone")
    pages = walk(gh, f"/repos/{REPO}/issues/7/comments?per_page=3")
    assert len(pages) == len(recorded)
    repo_id = call(gh, "GET", f"/repos/{REPO}/pulls/7").json()["base"]["repo"]["id"]
    for ours, theirs in zip(pages, recorded, strict=True):
        expected = re.sub(
            r"https://api\.github\.com/repositories/\d+/issues\?",
            f"{gh.url}/repositories/{repo_id}/issues/7/comments?",
            theirs["headers"]["link"],
        )
        assert ours.headers["Link"] == expected
        assert len(ours.json()) == len(theirs["response"])
    assert [r.path for r in gh.requests][1:5] == [
        f"/repositories/{repo_id}/issues/7/comments" for _ in range(4)
    ]


def test_headers_github_sends_are_all_sent(gh: FakeGitHub) -> None:
    recorded = next(
        e for e in spec.fixture("paginate-issues") if e["method"] == "get" and e["status"] == 200
    )
    # Sent only for classic OAuth tokens and personal access tokens, which GITHUB_TOKEN is not;
    # `connection: close` is how the recording tool ended each exchange.
    not_ours = {"x-oauth-scopes", "x-accepted-oauth-scopes", "connection"}
    for n in range(31):  # two pages, so that a Link is due as in the recording
        gh.add_comment(REPO, 7, f"comment {n}", login="someone")
    ours = call(gh, "GET", f"/repos/{REPO}/issues/7/comments")
    sent = {name.lower() for name in ours.headers}
    assert set(recorded["headers"]) - not_ours - sent == set()
    for name in ("content-type", "cache-control", "x-github-media-type", "vary"):
        assert ours.headers[name] == recorded["headers"][name], name
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used"):
        assert ours.headers[name].isdigit() and recorded["headers"][name].isdigit()
    assert re.fullmatch(r"\d{10}", ours.headers["x-ratelimit-reset"])
    assert re.fullmatch(r"\d{10}", recorded["headers"]["x-ratelimit-reset"])
    assert ours.headers["x-ratelimit-resource"] == recorded["headers"]["x-ratelimit-resource"]
    request_id = r"[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{7}:[0-9A-F]{7,8}:[0-9A-F]{8}"
    assert re.fullmatch(request_id, recorded["headers"]["x-github-request-id"])
    assert re.fullmatch(request_id, ours.headers["x-github-request-id"])
    assert re.fullmatch(r'"[0-9a-f]{64}"', recorded["headers"]["etag"])
    assert re.fullmatch(r'"[0-9a-f]{64}"', ours.headers["etag"])


def test_created_answers_match_githubs_recording(gh: FakeGitHub) -> None:
    recorded = next(
        e for e in spec.fixture("labels") if e["method"] == "post" and e["status"] == 201
    )
    assert recorded["headers"]["location"] == recorded["response"]["url"]
    created = post_comment(gh, "hello")
    assert created.headers["Location"] == created.json()["url"]
    for name in ("cache-control", "content-type"):
        assert created.headers[name] == recorded["headers"][name]
    assert "etag" in created.headers


def test_error_answers_match_githubs_recording(gh: FakeGitHub) -> None:
    invalid = next(e for e in spec.fixture("errors") if e["status"] == 422)
    ours = post_comment(gh, "")
    assert ours.status_code == 422
    assert set(invalid["response"]) <= set(ours.json())
    assert ours.json()["message"] == invalid["response"]["message"] == "Validation Failed"
    assert set(invalid["response"]["errors"][0]) <= set(ours.json()["errors"][0])
    missing = next(e for e in spec.fixture("branch-protection") if e["status"] == 404)
    ours = call(gh, "GET", "/repos/org/elsewhere/pulls/1")
    assert ours.status_code == 404
    assert set(missing["response"]) <= set(ours.json())
    for recording, answer in ((invalid, post_comment(gh, "")), (missing, ours)):
        # Errors carry no cache headers and the shorter Vary, as GitHub's did.
        assert "etag" not in answer.headers and "etag" not in recording["headers"]
        assert answer.headers["content-type"] == recording["headers"]["content-type"]


def test_objects_carry_the_fields_github_recorded(gh: FakeGitHub) -> None:
    issue = next(
        e["response"]
        for e in spec.fixture("add-labels-to-issue")
        if e["method"] == "post" and e["path"].endswith("/issues")
    )
    comment = post_comment(gh, "x").json()
    assert set(issue["user"]) <= set(comment["user"])
    assert set(issue["reactions"]) == set(comment["reactions"])
    for name in ("author_association", "performed_via_github_app", "node_id", "html_url"):
        assert name in issue and name in comment


# --- pagination -----------------------------------------------------------------------------


def test_pagination_reads_all_155_comments_in_order(gh: FakeGitHub) -> None:
    ids = [gh.add_comment(REPO, 7, f"comment {n}", login="someone") for n in range(155)]
    pages = walk(gh, f"/repos/{REPO}/issues/7/comments?per_page=100")
    assert [len(p.json()) for p in pages] == [100, 55]
    assert [c["id"] for p in pages for c in p.json()] == ids == sorted(ids)
    assert links(pages[0])["last"].endswith("per_page=100&page=2")
    assert set(links(pages[1])) == {"prev", "first"}

    default = walk(gh, f"/repos/{REPO}/issues/7/comments")
    assert [len(p.json()) for p in default] == [30, 30, 30, 30, 30, 5]
    assert links(default[0])["last"].endswith("?page=6")
    assert [c["id"] for p in default for c in p.json()] == ids

    capped = call(gh, "GET", f"/repos/{REPO}/issues/7/comments?per_page=500")
    assert len(capped.json()) == 100
    beyond = call(gh, "GET", f"/repos/{REPO}/issues/7/comments?per_page=100&page=3")
    assert beyond.status_code == 200 and beyond.json() == []


def test_a_single_page_has_no_link_header(gh: FakeGitHub) -> None:
    empty = call(gh, "GET", f"/repos/{REPO}/issues/7/comments")
    assert empty.json() == [] and "Link" not in empty.headers
    gh.add_comment(REPO, 7, "one", login="someone")
    one = call(gh, "GET", f"/repos/{REPO}/issues/7/comments?per_page=100")
    assert len(one.json()) == 1 and "Link" not in one.headers


def test_since_filters_by_update_time(gh: FakeGitHub) -> None:
    gh.add_comment(REPO, 7, "old", login="someone")
    later = call(gh, "GET", f"/repos/{REPO}/issues/7/comments?since=2999-01-01T00:00:00Z")
    assert later.json() == []
    earlier = call(gh, "GET", f"/repos/{REPO}/issues/7/comments?since=2000-01-01T00:00:00Z")
    assert [c["body"] for c in earlier.json()] == ["old"]


# --- faults -----------------------------------------------------------------------------------


def test_status_faults_answer_then_run_out(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=503, method="POST", times=2))
    assert call(gh, "GET", f"/repos/{REPO}/issues/7/comments").status_code == 200
    for _ in range(2):
        failed = post_comment(gh, "plan")
        assert failed.status_code == 503
        assert failed.json()["message"] == "Service Unavailable"
        assert "x-ratelimit-remaining" in failed.headers
    assert gh.comments(REPO, 7) == []
    assert post_comment(gh, "plan").status_code == 201
    assert [c["body"] for c in gh.comments(REPO, 7)] == ["plan"]
    assert gh.pending_faults == []


def test_a_502_comes_from_the_edge(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=502))
    edge = call(gh, "GET", "/user", token=PAT)
    assert edge.status_code == 502
    assert edge.text == '{\n  "message": "Server Error"\n}\n'
    assert edge.headers["content-type"] == "application/json"
    assert "x-ratelimit-remaining" not in edge.headers
    assert "x-github-request-id" in edge.headers


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_fault(gh: FakeGitHub, status: int) -> None:
    gh.inject(Fault(kind="primary_rate_limit", status=status, reset_in=120))
    before = int(time.time())
    limited = post_comment(gh, "plan")
    assert limited.status_code == status
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= before + 120
    assert limited.headers["x-ratelimit-used"] == limited.headers["x-ratelimit-limit"]
    assert re.fullmatch(
        r"API rate limit exceeded for installation ID \d+\.", limited.json()["message"]
    )
    assert "retry-after" not in limited.headers
    assert gh.comments(REPO, 7) == []


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_fault(gh: FakeGitHub, status: int) -> None:
    gh.inject(Fault(kind="secondary_rate_limit", status=status, retry_after=7, method="POST"))
    limited = post_comment(gh, "plan")
    assert limited.status_code == status
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit.")
    assert limited.headers["x-github-request-id"] in limited.json()["message"]
    assert limited.headers["x-ratelimit-remaining"] != "0"
    assert gh.comments(REPO, 7) == []
    assert post_comment(gh, "plan").status_code == 201


def test_body_too_long_fault(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="body_too_long"))
    refused = post_comment(gh, "short")
    assert refused.status_code == 422
    assert {k: refused.json()[k] for k in TOO_LONG_422} == TOO_LONG_422
    assert gh.comments(REPO, 7) == []


def test_slow_fault_delays_then_applies(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="slow", delay_s=1.5, method="POST"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(
            gh,
            "POST",
            f"/repos/{REPO}/issues/7/comments",
            json={"body": "late"},
            timeout=0.2,
        )
    # The client gave up, but GitHub still applies a request it received: a retry duplicates.
    wait_for(lambda: len(gh.comments(REPO, 7)) == 1, "the slow comment is stored")
    assert gh.requests[-1].status == 201
    assert call(gh, "GET", f"/repos/{REPO}/issues/7/comments").status_code == 200


def test_drop_fault_closes_without_an_answer(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="drop", method="POST"))
    with pytest.raises(requests.exceptions.ConnectionError):
        post_comment(gh, "lost")
    assert gh.comments(REPO, 7) == []
    assert gh.requests[-1].status is None
    assert gh.requests[-1].json == {"body": "lost"}
    # The answer lost after the write: the comment exists although the client saw an error.
    gh.inject(Fault(kind="drop", method="POST", after_write=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        post_comment(gh, "applied")
    assert [c["body"] for c in gh.comments(REPO, 7)] == ["applied"]
    assert post_comment(gh, "again").status_code == 201


def test_faults_match_by_method_and_path_in_order(gh: FakeGitHub) -> None:
    gh.inject(Fault(kind="status", status=500, path=r"/pulls/\d+$"))
    gh.inject(Fault(kind="status", status=503, path=r"/pulls/\d+$"))
    gh.inject(Fault(kind="status", status=500, method="PATCH"))
    assert call(gh, "GET", f"/repos/{REPO}/issues/7/comments").status_code == 200
    assert call(gh, "GET", f"/repos/{REPO}/commits/{HEAD}/pulls").status_code == 200
    assert call(gh, "GET", f"/repos/{REPO}/pulls/7").status_code == 500
    assert call(gh, "GET", f"/repos/{REPO}/pulls/7").status_code == 503
    assert call(gh, "GET", f"/repos/{REPO}/pulls/7").status_code == 200
    assert [f.method for f in gh.pending_faults] == ["PATCH"]


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="403 or 429"):
        Fault(kind="primary_rate_limit", status=500)
    with pytest.raises(ValueError, match="at least once"):
        Fault(kind="drop", times=0)


# --- rate limits that count -------------------------------------------------------------------


def test_the_primary_rate_limit_counts_down_and_refuses() -> None:
    with FakeGitHub() as gh:
        gh.add_token("ghp_small", login="octocat", type="User", rate_limit=3)
        gh.add_token(BOT, login="github-actions[bot]", type="Bot")
        gh.add_pull(REPO, 7, head_sha=HEAD)
        seen = []
        etag = ""
        for _ in range(3):
            answer = call(gh, "GET", f"/repos/{REPO}/pulls/7", token="ghp_small")
            assert answer.status_code == 200
            seen.append(answer.headers["x-ratelimit-remaining"])
            etag = answer.headers["etag"]
        assert seen == ["2", "1", "0"]
        assert gh.rate_limit("ghp_small")["used"] == 3
        refused = call(gh, "GET", f"/repos/{REPO}/pulls/7", token="ghp_small")
        assert refused.status_code == 403
        assert re.fullmatch(r"API rate limit exceeded for user ID \d+\.", refused.json()["message"])
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.headers["x-ratelimit-used"] == "3"
        assert int(refused.headers["x-ratelimit-reset"]) > time.time()
        # Other tokens have their own bucket; GITHUB_TOKEN's is 1,000 an hour.
        other = call(gh, "GET", f"/repos/{REPO}/pulls/7", token=BOT)
        assert other.headers["x-ratelimit-limit"] == "1000"
        assert other.headers["x-ratelimit-remaining"] == "999"
        # A conditional request answered 304 and GET /rate_limit do not count.
        unchanged = call(gh, "GET", f"/repos/{REPO}/pulls/7", token=BOT)
        assert unchanged.headers["etag"] == etag
        cached = call(
            gh, "GET", f"/repos/{REPO}/pulls/7", token=BOT, headers={"If-None-Match": etag}
        )
        assert cached.status_code == 304 and cached.content == b""
        overview = call(gh, "GET", "/rate_limit", token=BOT).json()
        assert overview["resources"]["core"]["remaining"] == 998
        assert gh.rate_limit(BOT)["used"] == 2


def test_the_secondary_limit_on_content_creation() -> None:
    with FakeGitHub(content_per_minute=3) as gh:
        gh.add_token(BOT, login="github-actions[bot]", type="Bot")
        gh.add_pull(REPO, 7, head_sha=HEAD)
        made = [post_comment(gh, f"c{n}") for n in range(3)]
        assert [m.status_code for m in made] == [201, 201, 201]
        limited = post_comment(gh, "c3")
        assert limited.status_code == 403
        assert "temporarily blocked from content creation" in limited.json()["message"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["x-ratelimit-remaining"] != "0"
        assert len(gh.comments(REPO, 7)) == 3
        # Editing is not content creation.
        edited = call(gh, "PATCH", made[0].json()["url"], json={"body": "edited"})
        assert edited.status_code == 200


# --- authentication and permissions -----------------------------------------------------------


def test_missing_and_unknown_tokens_are_refused(gh: FakeGitHub) -> None:
    missing = call(gh, "GET", f"/repos/{REPO}/issues/7/comments", token=None)
    assert missing.status_code == 401
    assert missing.json()["message"] == "Requires authentication"
    for token, scheme in (("nope", "Bearer"), ("nope", "token"), (BOT, "Basic")):
        refused = call(gh, "GET", f"/repos/{REPO}/issues/7/comments", token=token, scheme=scheme)
        assert refused.status_code == 401
        assert refused.json() == {
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        }
        assert "x-ratelimit-limit" in refused.headers
    for scheme in ("Bearer", "token", "bearer"):
        ok = call(gh, "GET", f"/repos/{REPO}/issues/7/comments", token=BOT, scheme=scheme)
        assert ok.status_code == 200


def test_a_read_only_token_cannot_write(gh: FakeGitHub) -> None:
    existing = gh.add_comment(REPO, 7, "theirs", login="someone")
    assert call(gh, "GET", f"/repos/{REPO}/issues/7/comments", token=READ_ONLY).status_code == 200
    created = post_comment(gh, "plan", token=READ_ONLY)
    url = f"/repos/{REPO}/issues/comments/{existing}"
    edited = call(gh, "PATCH", url, token=READ_ONLY, json={"body": "mine"})
    deleted = call(gh, "DELETE", url, token=READ_ONLY)
    for refused in (created, edited, deleted):
        assert refused.status_code == 403
        assert refused.json()["message"] == "Resource not accessible by integration"
        assert refused.headers["x-accepted-github-permissions"] == (
            "issues=write; pull_requests=write"
        )
    assert [c["body"] for c in gh.comments(REPO, 7)] == ["theirs"]


def test_unknown_things_are_not_found(gh: FakeGitHub) -> None:
    other_repo = "org/other"
    gh.add_pull(other_repo, 1, head_sha="c" * 40)
    theirs = gh.add_comment(other_repo, 1, "elsewhere", login="someone")
    for method, path in (
        ("GET", "/repos/org/missing/issues/7/comments"),
        ("GET", f"/repos/{REPO}/issues/99/comments"),
        ("POST", f"/repos/{REPO}/issues/99/comments"),
        ("GET", f"/repos/{REPO}/issues/comments/{theirs}"),
        ("PATCH", f"/repos/{REPO}/issues/comments/12345"),
        ("GET", f"/repos/{REPO}/pulls/99"),
        ("GET", "/repos/org/missing/commits/abc/pulls"),
        ("GET", f"/repos/{REPO}/nothing-here"),
    ):
        answer = call(gh, method, path, json={"body": "x"} if method != "GET" else None)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["message"] == "Not Found"
        assert answer.json()["documentation_url"].startswith("https://docs.github.com/rest")
    assert call(gh, "GET", f"/repos/{other_repo}/issues/comments/{theirs}").status_code == 200
    # Owner and name are case-insensitive, as on GitHub.
    assert call(gh, "GET", "/repos/Org/App/pulls/7").status_code == 200


def test_api_versions(gh: FakeGitHub) -> None:
    path = f"/repos/{REPO}/issues/7/comments"
    refused = call(gh, "GET", path, headers={"X-GitHub-Api-Version": "2099-01-01"})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(
        'The version you specified in the "X-GitHub-API-Version" request header, "2099-01-01", '
        "is not a supported version."
    )
    newer = call(gh, "GET", path, headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert newer.headers["x-github-api-version-selected"] == "2026-03-10"
    unversioned = requests.get(
        gh.url + path, headers={"Authorization": f"Bearer {BOT}"}, timeout=10
    )
    assert unversioned.headers["x-github-api-version-selected"] == "2022-11-28"


def test_malformed_requests(gh: FakeGitHub) -> None:
    path = f"/repos/{REPO}/issues/7/comments"
    not_json = call(
        gh, "POST", path, data=b"{body: nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["message"] == "Problems parsing JSON"
    no_body = call(gh, "POST", path)
    assert no_body.status_code == 422
    assert no_body.json()["message"] == 'Invalid request.\n\n"body" wasn\'t supplied.'
    not_text = call(gh, "POST", path, json={"body": 5})
    assert not_text.status_code == 422
    assert (
        not_text.json()["message"]
        == "Invalid request.\n\nFor 'properties/body', 5 is not a string."
    )
    assert call(gh, "POST", path, json=["body"]).status_code == 422
    # "Requests without a valid User-Agent header will be rejected."
    anonymous_agent = call(gh, "GET", path, headers={"User-Agent": ""})
    assert anonymous_agent.status_code == 403
    assert "User-Agent" in anonymous_agent.text
    assert gh.comments(REPO, 7) == []


# --- comment bodies ---------------------------------------------------------------------------


def test_bodies_over_65536_characters_are_refused(gh: FakeGitHub) -> None:
    refused = post_comment(gh, "x" * (LIMIT + 1))
    assert refused.status_code == 422
    assert {k: refused.json()[k] for k in TOO_LONG_422} == TOO_LONG_422
    assert refused.json()["documentation_url"].endswith("#create-an-issue-comment")
    assert gh.comments(REPO, 7) == []
    fits = post_comment(gh, "x" * LIMIT)
    assert fits.status_code == 201 and len(fits.json()["body"]) == LIMIT
    # Code points are counted, not bytes: 65,536 four-byte emoji fit too.
    assert post_comment(gh, "\U0001f418" * LIMIT).status_code == 201
    too_long_edit = call(gh, "PATCH", fits.json()["url"], json={"body": "y" * (LIMIT + 1)})
    assert too_long_edit.status_code == 422
    assert {k: too_long_edit.json()[k] for k in TOO_LONG_422} == TOO_LONG_422
    assert gh.comments(REPO, 7)[0]["body"] == "x" * LIMIT


def test_update_and_delete(gh: FakeGitHub) -> None:
    created = post_comment(gh, "first").json()
    updated = call(gh, "PATCH", created["url"], json={"body": "second"}).json()
    assert updated["id"] == created["id"]
    assert updated["created_at"] == created["created_at"]
    assert updated["updated_at"] >= created["updated_at"]
    fetched = call(gh, "GET", created["url"]).json()
    assert fetched == updated
    assert call(gh, "GET", f"/repos/{REPO}/pulls/7").json()["comments"] == 1
    deleted = call(gh, "DELETE", created["url"])
    assert deleted.status_code == 204 and deleted.content == b""
    assert call(gh, "GET", created["url"]).status_code == 404
    assert gh.comments(REPO, 7) == []


def test_commit_pulls(gh: FakeGitHub) -> None:
    gh.add_pull(REPO, 9, head_sha="d" * 40, merge_commit_sha="e" * 40, state="closed", merged=True)
    gh.add_commit(REPO, "f" * 40)
    merged = call(gh, "GET", f"/repos/{REPO}/commits/{'e' * 40}/pulls").json()
    assert [(p["number"], p["state"], p["merged_at"] is not None) for p in merged] == [
        (9, "closed", True)
    ]
    assert call(gh, "GET", f"/repos/{REPO}/commits/{'f' * 40}/pulls").json() == []
    unknown = call(gh, "GET", f"/repos/{REPO}/commits/{'0' * 40}/pulls")
    assert unknown.status_code == 422
    assert unknown.json()["message"] == f"No commit found for SHA: {'0' * 40}"


def test_requests_are_recorded(gh: FakeGitHub) -> None:
    post_comment(gh, "plan")
    call(gh, "GET", f"/repos/{REPO}/issues/7/comments?per_page=100&page=1")
    first, second = gh.requests
    assert (first.method, first.path, first.json, first.status) == (
        "POST",
        f"/repos/{REPO}/issues/7/comments",
        {"body": "plan"},
        201,
    )
    assert first.headers["authorization"] == f"Bearer {BOT}"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert (second.method, second.query, second.json, second.status) == (
        "GET",
        {"per_page": "100", "page": "1"},
        None,
        200,
    )
    gh.clear_requests()
    assert gh.requests == []


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_requests(gh: FakeGitHub) -> None:
    threads, per_thread = 8, 8  # 64 creations: under the 80-a-minute secondary limit
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        try:
            with requests.Session() as session:
                session.headers.update(
                    {"Authorization": f"Bearer {BOT}", "X-GitHub-Api-Version": "2022-11-28"}
                )
                for n in range(per_thread):
                    made = session.post(
                        f"{gh.url}/repos/{REPO}/issues/7/comments",
                        json={"body": f"{worker}-{n}"},
                        timeout=10,
                    )
                    listed = session.get(f"{gh.url}/repos/{REPO}/issues/7/comments", timeout=10)
                    with lock:
                        statuses.extend((made.status_code, listed.status_code))
        except BaseException as error:
            with lock:
                errors.append(error)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(set(statuses)) == [200, 201]
    stored = gh.comments(REPO, 7)
    assert len(stored) == threads * per_thread
    assert sorted(c["body"] for c in stored) == sorted(
        f"{w}-{n}" for w in range(threads) for n in range(per_thread)
    )
    assert len({c["id"] for c in stored}) == len(stored)
    # Requests are recorded in the order they were applied: ids grow along the record.
    bodies = [r.json["body"] for r in gh.requests if r.method == "POST"]
    by_body = {c["body"]: c["id"] for c in stored}
    assert [by_body[b] for b in bodies] == sorted(by_body.values())
    assert gh.rate_limit(BOT)["used"] == 2 * threads * per_thread


def test_a_crash_in_the_fake_fails_the_test() -> None:
    gh = FakeGitHub()
    gh.start()
    gh.add_token(BOT, login="github-actions[bot]", type="Bot")

    def broken(*args: Any) -> Any:
        raise RuntimeError("bug in a route")

    gh._route = broken  # type: ignore[method-assign,assignment]
    answer = call(gh, "GET", "/user")
    assert answer.status_code == 500
    assert "bug in a route" in answer.json()["message"]
    with pytest.raises(AssertionError, match="crashed"):
        gh.close()
