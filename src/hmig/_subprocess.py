"""The one place in hmig that starts child processes.

`run` executes a program to completion and returns its output as text; `spawn` starts a
long-lived child with pipes (the Node bridge). Both turn "the program does not exist" into
`ToolMissing` and a timeout into an `HmigError`, so callers never see `subprocess` exceptions.
This module must not know about any particular tool, and must not read `os.environ`: callers
pass the environment they want the child to see.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from hmig.errors import HmigError, ToolMissing

Process: TypeAlias = "subprocess.Popen[bytes]"
"""A child started by `spawn`; other modules name its type without importing subprocess."""


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished process: exit code and its output decoded as UTF-8."""

    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run `argv` to completion; a non-zero exit is returned, not raised, so callers decide.

    `env=None` lets the child inherit hmig's environment; pass a mapping to control it.
    """
    program = argv[0]
    try:
        completed = subprocess.run(
            list(argv),
            env=None if env is None else dict(env),
            input=input,
            capture_output=True,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HmigError(
            f"{program} did not finish within {timeout:g} s and was stopped",
            hint="Check that the program is not waiting for input or a network resource.",
        ) from exc
    except OSError as exc:
        raise _not_startable(program, exc) from exc
    return Completed(
        returncode=completed.returncode,
        stdout=_text(completed.stdout),
        stderr=_text(completed.stderr),
    )


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    own_session: bool = True,
) -> Process:
    """Start `argv` with stdin, stdout and stderr connected to pipes; the caller owns it.

    With `own_session` (the default) the child gets its own session, so a Ctrl-C in the
    terminal reaches hmig only: hmig cancels its statement and then stops the child itself,
    instead of the child dying first and hiding the interruption behind a crash.
    """
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=own_session,
        )
    except OSError as exc:
        raise _not_startable(argv[0], exc) from exc


def wait(process: Process, *, timeout: float) -> int | None:
    """The child's exit code, or None if it is still running after `timeout` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def stop(process: Process, *, grace: float) -> int:
    """Close the child's stdin, give it `grace` seconds to exit, then kill it; its exit code."""
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):  # the child is already gone; wait() says how
            process.stdin.close()
    code = wait(process, timeout=grace)
    if code is None:
        process.kill()
        code = process.wait()
    return code


def _not_startable(program: str, exc: OSError) -> HmigError:
    """`FileNotFoundError` and `PermissionError` mean the tool is unusable; say which."""
    if isinstance(exc, FileNotFoundError):
        return ToolMissing(
            f"{program} was not found",
            hint="Install it, or put it on PATH.",
        )
    if isinstance(exc, PermissionError):
        return ToolMissing(
            f"{program} is not executable ({exc.strerror})",
            hint="Check the file's permissions.",
        )
    return ToolMissing(f"{program} could not be started: {exc}")


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")
