"""psycopg's clean-up warnings stay off hmig's stderr: hmig reports the error it raised.

Each case runs in a fresh interpreter, since logging's configuration is process-wide.
"""

from __future__ import annotations

import subprocess
import sys


def _stderr(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import logging, hmig.postgres.connection\n" + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stderr


def test_cleanup_warning__not_printed_when_nothing_configures_logging() -> None:
    # What psycopg logs when a pipeline's skipped commands fail after the error it raised.
    warning = "logging.getLogger('psycopg').warning('error ignored terminating %s', 'pipeline')"
    assert _stderr(warning) == ""


def test_cleanup_warning__still_reaches_logging_an_embedding_program_configures() -> None:
    code = "logging.basicConfig()\nlogging.getLogger('psycopg').warning('error ignored')"
    assert "WARNING:psycopg:error ignored" in _stderr(code)
