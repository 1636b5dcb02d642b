"""Test-only fault injection: SIGKILL this process when a run reaches a named point.

hmig promises that a run killed at any moment (a cancelled CI job, a lost runner, the OOM
killer) leaves a migration applied exactly once or not at all, with a history that agrees with
the schema. `tests/integration/test_faults.py` proves it by killing `hmig apply` at the moments
that matter; the code marks each one with `reached(point)`. The entry points `arm` the switch
once from `Settings.fault` (`HMIG_FAULT=after-history-row`, or `after-history-row:2` for the
second time that point is reached); unarmed, as always outside the tests, `reached` compares one
attribute and returns. This module must not read the environment (settings does) and does no
I/O: its one effect is `os.kill` on its own process. SIGKILL, not an exception and not
`sys.exit`, because it must be what the outside world does: no `finally`, no rollback, no
`atexit`, no closing of the connection; the server alone notices the session is gone.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

# Every point, in the order an apply passes them. Each names the moment just before the
# `reached` call returns, i.e. what is done and what is not yet done when the process dies.
POINTS = (
    "before-lock",  # connected and checked the target; the migration lock not yet requested
    "during-backup",  # pg_dump wrote the archive; not yet verified, no migration has run
    "before-history-row",  # a migration's statements ran in its transaction; no history row yet
    "after-history-row",  # the history row is queued to go out with the COMMIT; not committed
    "after-commit",  # a migration and its history row committed; the next not yet begun
    "before-statement",  # outside a transaction: progress says `started`; statement not sent
    "after-statement",  # outside a transaction: the statement ran; progress still `started`
    "between-statements",  # outside a transaction: progress says `done`; the next not started
    "posting-comment",  # the Action: the run is over and reported; the PR comment not yet sent
)


@dataclass(slots=True)
class _Armed:
    point: str | None = None
    nth: int = 1
    seen: int = 0


_armed = _Armed()


def parse(spec: str) -> tuple[str, int]:
    """`point` or `point:N` → (point, N); a point not in `POINTS` raises `ValueError`.

    An unknown point is a mistake in a test, so it fails loudly at start instead of never
    firing, which would let the test pass without injecting anything.
    """
    point, _, nth = spec.strip().partition(":")
    if point not in POINTS:
        raise ValueError(f"HMIG_FAULT: unknown fault point {point!r}; known: {', '.join(POINTS)}")
    if nth and not (nth.isdigit() and int(nth) >= 1):
        raise ValueError(f"HMIG_FAULT: {spec!r}: the count after ':' must be a number from 1")
    return point, int(nth) if nth else 1


def arm(spec: str | None) -> None:
    """Kill the process the `N`th time `spec`'s point is reached; `None` or empty disarms."""
    if not spec:
        _armed.point, _armed.nth, _armed.seen = None, 1, 0
        return
    _armed.point, _armed.nth = parse(spec)
    _armed.seen = 0


def reached(point: str) -> None:
    """A run passes `point`; when it is the armed one (for the `N`th time), die at once."""
    assert point in POINTS, point  # a misspelt call site would never fire
    if _armed.point is None or point != _armed.point:
        return
    _armed.seen += 1
    if _armed.seen == _armed.nth:
        os.kill(os.getpid(), signal.SIGKILL)
