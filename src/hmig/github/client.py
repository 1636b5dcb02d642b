"""The GitHub REST client: headers, timeouts, retries, rate limits, pagination, typed errors.

One `GitHubClient` talks to one API root (`GITHUB_API_URL`: api.github.com, or a GitHub
Enterprise Server's `/api/v3`) with one token, one request at a time (GitHub's REST best
practices: "make requests serially", and a second between writes). It retries what GitHub says
may be retried, the way its rate-limit docs say: 5xx answers and lost connections with
exponential backoff; a 403/429 rate limit after `retry-after`, else at `x-ratelimit-reset` when
`x-ratelimit-remaining` is 0, else after a minute, doubling. A POST that went out without an
answer is never blindly repeated: the caller's `recheck` looks first, so a retry cannot make a
duplicate. Every failure is a `GitHubError` (a 403 that is not a rate limit is
`GitHubNotPermitted`, a comment over the size limit `CommentTooLong`), and no error text or repr
holds the token. This module knows no endpoint's meaning (that is `comments`), and must not read
`os.environ`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from hmig import __version__
from hmig.errors import CommentTooLong, GitHubError, GitHubNotPermitted

API_VERSION = "2022-11-28"  # supported until 2028-03-10 (GitHub's "API Versions" page)
PER_PAGE = 100  # the maximum; the default of 30 is how other actions miss their own comment
DEFAULT_USER_AGENT = f"hmig/{__version__}"  # "Requests without a valid User-Agent … rejected"
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_MAX_PAGES = 1000  # a loop guard against a server whose `next` never ends
_PERMISSION_HINT = (
    "The token may not write here. A pull request from a fork (or from Dependabot) gets a "
    "read-only GITHUB_TOKEN; otherwise give the job `permissions: { contents: read, "
    "pull-requests: write }`."
)

Params = Mapping[str, str | int]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long the client keeps trying; the defaults follow GitHub's rate-limit docs.

    `attempts` bounds tries for 5xx answers and lost connections (waits `backoff_s`, doubling,
    at most `max_backoff_s`). `rate_limit_retries` bounds waits for rate limits; a secondary
    limit without `retry-after` waits `secondary_wait_s` ("at least one minute"), doubling. A
    wait longer than `max_wait_s` is not waited: the error comes at once, since a PR comment is
    not worth holding a deploy job until the hour's limit resets.
    """

    attempts: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 16.0
    rate_limit_retries: int = 3
    secondary_wait_s: float = 60.0
    max_wait_s: float = 300.0
    write_interval_s: float = 1.0  # "wait at least one second between each request" that writes


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect, and to wait for each read of the answer.

    GitHub ends a request that takes more than 10 s ("Troubleshooting the REST API"), so a read
    timeout above that means GitHub is done with a POST by the time hmig gives up on it, and a
    `recheck` sees what it did.
    """

    connect_s: float = 10.0
    read_s: float = 20.0


@dataclass(frozen=True, slots=True)
class _Answer:
    """A successful call: its JSON, and the next page's URL for a list."""

    json: Any
    next_url: str | None = None


class _Transient(Exception):
    """A 5xx or a lost connection; `sent` when the request may have reached GitHub."""

    def __init__(self, reason: str, *, sent: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.status = status


class _RateLimited(Exception):
    """A 403/429 rate limit; `wait_s` None means GitHub named no time (a secondary limit)."""

    def __init__(self, reason: str, *, wait_s: float | None, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s
        self.status = status


class _BearerAuth(requests.auth.AuthBase):
    """The token as a `requests` auth object: a .netrc cannot replace it, a repr cannot show it.

    `requests` drops it when a redirect leaves the host (`Session.rebuild_auth`).
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


class GitHubClient:
    """GitHub's REST API for one token: serial, retrying, never showing the token.

    `sleep` and `clock` (wall time, for `x-ratelimit-reset`) are parameters so tests can see
    every wait the client asks for without waiting.
    """

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        user_agent: str = DEFAULT_USER_AGENT,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not token:
            raise GitHubError("no GitHub token", hint="Pass `github-token` (or set GITHUB_TOKEN).")
        self.api_url = api_url.rstrip("/")
        self._origin = _origin(self.api_url)
        self._token = token
        self._timeouts = timeouts
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        # Reentrant: a POST's `recheck` lists comments through this same client.
        self._lock = threading.RLock()
        self._last_write: float | None = None
        self._session = requests.Session()
        self._session.auth = _BearerAuth(token)
        self._session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": user_agent,
            }
        )

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # --- the calls ---------------------------------------------------------------------------

    def get(self, path: str, *, params: Params | None = None) -> Any:
        """GET one resource; its JSON."""
        return self._call("GET", self._url(path), params=params).json

    def paginate(self, path: str, *, params: Params | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, one request per page of 100, following `Link: next`.

        Lazy: a caller that stops early (it found what it looked for) sends no further request.
        """
        url: str | None = self._url(path)
        query: Params | None = {**(params or {}), "per_page": PER_PAGE}
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= _MAX_PAGES:
                raise GitHubError(f"GET {path}: the pages of the answer do not end")
            seen.add(url)
            answer = self._call("GET", url, params=query)
            if not isinstance(answer.json, list):
                raise GitHubError(f"GET {path}: expected a list, got {type(answer.json).__name__}")
            yield from answer.json
            url, query = answer.next_url, None  # the `next` URL carries its own query

    def post(
        self,
        path: str,
        *,
        json: Mapping[str, Any],
        recheck: Callable[[], Any | None] | None = None,
    ) -> Any:
        """POST (create); its JSON.

        When the request went out but no usable answer came back (a 5xx, a dropped connection, a
        read timeout), the resource may exist already. `recheck` is asked first, after the
        backoff: what it returns is the answer; None means "not there", and the POST goes again.
        Without `recheck` such a POST is not repeated: that is a `GitHubError`.
        """
        return self._call("POST", self._url(path), payload=json, recheck=recheck).json

    def patch(self, path: str, *, json: Mapping[str, Any]) -> Any:
        """PATCH (update: idempotent, so retried like a GET); its JSON."""
        return self._call("PATCH", self._url(path), payload=json).json

    # --- one call, with its retries ------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        payload: Mapping[str, Any] | None = None,
        recheck: Callable[[], Any | None] | None = None,
    ) -> _Answer:
        what = f"{method} {urlsplit(url).path}"
        transient = limited = 0
        with self._lock:
            while True:
                try:
                    return self._attempt(method, url, params=params, payload=payload)
                except _RateLimited as exc:
                    limited += 1
                    self._sleep(self._rate_limit_wait(exc, what=what, count=limited))
                except _Transient as exc:
                    transient += 1
                    self._sleep(self._backoff(exc, what=what, count=transient))
                    if exc.sent and method == "POST":
                        found = _recheck(exc, what=what, recheck=recheck)
                        if found is not None:
                            return _Answer(json=found)

    def _backoff(self, exc: _Transient, *, what: str, count: int) -> float:
        if count >= self._retry.attempts:
            raise GitHubError(
                f"{what}: {exc.reason} (after {count} attempts)",
                status=exc.status,
                hint="GitHub may be having an incident: https://www.githubstatus.com",
            ) from exc
        wait: float = self._retry.backoff_s * 2.0 ** (count - 1)
        return min(wait, self._retry.max_backoff_s)

    def _rate_limit_wait(self, exc: _RateLimited, *, what: str, count: int) -> float:
        # No time given (a secondary limit): "wait for at least one minute before retrying …
        # an exponentially increasing amount of time between retries" (GitHub's rate-limit docs).
        wait = exc.wait_s
        if wait is None:
            wait = self._retry.secondary_wait_s * 2.0 ** (count - 1)
        if count > self._retry.rate_limit_retries:
            why = f"still limited after {count - 1} waits"
        elif wait > self._retry.max_wait_s:
            why = f"GitHub asks to wait {wait:.0f} s, longer than hmig waits"
        else:
            return wait
        raise GitHubError(
            f"{what}: {exc.reason}; {why}",
            status=exc.status,
            hint="Requests made while rate limited can get the token banned; rerun later.",
        ) from exc

    def _attempt(
        self, method: str, url: str, *, params: Params | None, payload: Mapping[str, Any] | None
    ) -> _Answer:
        """Send once: the answer, or `_Transient` / `_RateLimited` / `GitHubError`."""
        self._space_writes(method)
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=payload,
                timeout=(self._timeouts.connect_s, self._timeouts.read_s),
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise _Transient(f"connecting timed out: {self._safe(exc)}", sent=False) from exc
        except requests.exceptions.ReadTimeout as exc:
            reason = f"no answer within {self._timeouts.read_s:g} s"
            raise _Transient(reason, sent=True) from exc
        except requests.exceptions.ConnectionError as exc:
            reason = f"connection failed: {self._safe(exc)}"
            raise _Transient(reason, sent=not _never_sent(exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise GitHubError(f"{method} {urlsplit(url).path}: {self._safe(exc)}") from exc
        finally:
            if method in _WRITES:
                self._last_write = time.monotonic()
        self._check(response, what=f"{method} {urlsplit(url).path}")
        return _Answer(json=self._json(response), next_url=self._next_page(response))

    def _space_writes(self, method: str) -> None:
        if method not in _WRITES or self._last_write is None:
            return
        left = self._retry.write_interval_s - (time.monotonic() - self._last_write)
        if left > 0:
            self._sleep(left)

    def _check(self, response: requests.Response, *, what: str) -> None:
        """Nothing when it succeeded; else the exception that says what to do about it."""
        status = response.status_code
        if status < 400:
            return
        message = self._safe(_message(response))
        if status in (403, 429):
            limited = _rate_limited(response, now=self._clock(), message=message)
            if limited is not None:
                raise limited
        if status >= 500:
            raise _Transient(f"GitHub answered {status} {message}", sent=True, status=status)
        raise _client_error(status=status, what=what, message=message, detail=_detail(response))

    def _safe(self, value: object) -> str:
        """Text for an error: never the token, even if a server or a library echoed it."""
        return str(value).replace(self._token, "<redacted>")

    # --- URLs and bodies -----------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"an API path starts with '/': {path!r}")
        return self.api_url + path

    def _next_page(self, response: requests.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        # GitHub's links are absolute; the token goes only to the API it was given for.
        if _origin(url) != self._origin:
            raise GitHubError(f"the next page ({urlsplit(url).netloc}) is on another host")
        return str(url)

    def _json(self, response: requests.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            what = f"{response.request.method} {urlsplit(response.url).path}"
            raise GitHubError(
                f"{what}: the answer is not JSON", status=response.status_code
            ) from exc


def _recheck(exc: _Transient, *, what: str, recheck: Callable[[], Any | None] | None) -> Any:
    """After a POST that may have been applied: what `recheck` finds, or None to send again."""
    if recheck is None:
        raise GitHubError(
            f"{what}: {exc.reason}; it may have been applied, so it is not sent again",
            status=exc.status,
        ) from exc
    return recheck()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """A refused connection or an unknown host: the request never reached GitHub."""
    reason = exc.args[0] if exc.args else None
    return isinstance(getattr(reason, "reason", reason), NewConnectionError)


def _rate_limited(response: requests.Response, *, now: float, message: str) -> _RateLimited | None:
    """The rate limit a 403/429 reports, with how long to wait; None when it is not one.

    GitHub's order: `retry-after` when present; else `x-ratelimit-reset` when
    `x-ratelimit-remaining` is 0; else a secondary limit (a 429, or its message) waits at least
    a minute ("Rate limits for the REST API", "Exceeding the rate limit"). Anything else, e.g.
    `Resource not accessible by integration`, is a permission error and is not retried.
    """
    headers = response.headers
    reason = f"rate limited ({response.status_code} {message})"
    retry_after = headers.get("retry-after")
    reset = headers.get("x-ratelimit-reset")
    wait: float | None = None
    if retry_after is not None:
        wait = _seconds(retry_after)
    elif headers.get("x-ratelimit-remaining") == "0" and reset:
        at = _seconds(reset)
        # +1: requests within the reset second itself may still be refused.
        wait = None if at is None else max(at - now, 0.0) + 1.0
    elif response.status_code != 429 and "rate limit" not in message.lower():
        return None
    return _RateLimited(reason, wait_s=wait, status=response.status_code)


def _seconds(value: str) -> float | None:
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.reason or ""


def _detail(response: requests.Response) -> str:
    """The `errors[].message` (or `.code`) of a validation error, joined."""
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))


def _client_error(*, status: int, what: str, message: str, detail: str) -> GitHubError:
    """A 4xx that retrying will not fix, as the error a caller can act on."""
    text = f"{what}: {status} {message}" + (f" ({detail})" if detail else "")
    if status == 403:
        return GitHubNotPermitted(text, status=status, hint=_PERMISSION_HINT)
    if status == 422 and "too long" in detail.lower():
        return CommentTooLong(
            text, status=status, hint="The full report is in the job summary and the log."
        )
    if status == 401:
        return GitHubError(text, status=status, hint="The token is wrong or has expired.")
    if status == 404:
        return GitHubError(
            text,
            status=status,
            hint="A GITHUB_TOKEN reaches only the repository its workflow runs in.",
        )
    return GitHubError(text, status=status)
