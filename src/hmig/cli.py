"""The `hmig` command line: parse arguments, run a command, print, choose the exit code.

This is the one place (with the Action, later) that catches `HmigError` and turns it into an
exit code and a report. `--manifest`, `--env`, `--json` and the other common options are
accepted before or after the command.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import gc
import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO

from hmig import __version__
from hmig.errors import ConfigurationError, ExitCode, HmigError, Interrupted
from hmig.model import Outcome

if TYPE_CHECKING:
    from hmig import commands
    from hmig.settings import Settings

# The engine (psycopg, pglast, jsonschema, …) is imported when a command runs, not before:
# `hmig --version` and `--help` answer in a fraction of the time (bench/all.py, "start").
# Each command is the function of the same name in `hmig.commands`.
_COMMANDS: dict[str, str] = {
    "validate": "check the manifest and every migration file (no database)",
    "status": "list applied, pending and unknown migrations",
    "plan": "show what apply would do, with the exact SQL of each migration",
    "apply": "apply pending migrations under the migration lock",
    "drift": "check that the database is what the migrations say it is",
    "rollback": "undo the last applied migration(s), newest first",
    "baseline": "record migrations up to --to as applied, without running",
    "repair": "bring the history in line with the files: accept, re-map or remove rows",
    "backup": "take a verified backup now, with the environment's policy",
    "restore": "restore a backup into the environment's database",
    "backups": "list the environment's backups and what each one holds",
    "new": "create a migration file: {timestamp}_{description}.sql|js",
    "schema": "print the manifest's JSON Schema",
}


COMMAND_NAMES = frozenset(_COMMANDS)


class _Console:
    """Human text, with every secret masked; on stderr when stdout carries the JSON report."""

    def __init__(self, stream: TextIO, secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def line(self, text: str = "") -> None:
        from hmig.reporting import redact

        print(redact(text, self._secrets), file=self._stream, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run hmig; return the process exit code (README, "Exit codes").

    The process's entry point (the console script, `python -m hmig`), not a library call: it
    sets the process's garbage collector up for one short command (`_start_up`).
    """
    args = _parser().parse_args(argv)
    with _start_up():
        from hmig import faults, manifest, reporting
        from hmig.settings import Settings

        if args.command == "schema":
            print(json.dumps(manifest.schema(), indent=2))
            return ExitCode.OK
        settings = Settings.from_process()
        faults.arm(settings.fault)  # test-only (tests/README.md, "Fault injection")
        as_json = bool(getattr(args, "json", False))
        console = _Console(sys.stderr if as_json else sys.stdout, settings.secrets())
        invocation = _invocation(args, interactive=sys.stdin.isatty())
    result = execute(invocation, settings, console)
    if as_json:
        text = json.dumps(result.report, indent=2, default=str)
        print(reporting.redact(text, settings.secrets()), flush=True)
    return int(result.exit_code)


@contextlib.contextmanager
def _start_up() -> Iterator[None]:
    """Import the engine with the cyclic garbage collector off, then freeze what it made.

    Start-up loads some 450 modules (psycopg, jsonschema, pglast, …): about 80,000 objects that
    live until exit. The collector would walk them again and again while they load, and in every
    full collection after, the one at exit included. Frozen (`gc.freeze`), they are left out of
    every later collection: `apply` with nothing to do starts and ends about 50 ms sooner, in
    0.25 s (bench/README.md, "Where the time goes"). Only the collector is changed: finalizers,
    `atexit` hooks and context managers run as before.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def parse(argv: Sequence[str]) -> commands.Invocation:
    """The CLI's grammar for callers that are not a terminal (the Action's `command` and `args`).

    Raises `ConfigurationError` instead of exiting, so the caller can report which input was wrong.
    """
    args = _parser(strict=True).parse_args(argv)
    if args.command == "schema":
        raise ConfigurationError("`schema` prints the manifest schema; it is not a deploy command")
    return _invocation(args, interactive=False)


def execute(
    invocation: commands.Invocation, settings: Settings, console: commands.Console
) -> commands.Result:
    """Run one command; every `HmigError` and interrupt becomes a result with a report."""
    from hmig import commands, reporting

    run: Callable[[commands.Invocation, Settings, commands.Console], commands.Result]
    run = getattr(commands, invocation.command)
    scope = contextvars.copy_context()  # what this command reached, for its error report
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return scope.run(run, invocation, settings, console)
    except HmigError as error:
        for text in reporting.error_lines(error):
            console.line(text)
        return _error_result(invocation, error, commands.reached_in(scope))
    except KeyboardInterrupt:
        interrupted = Interrupted("interrupted before any migration ran; nothing was changed")
        console.line(f"✗ {interrupted.message}")
        return _error_result(invocation, interrupted, commands.reached_in(scope))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _invocation(args: argparse.Namespace, *, interactive: bool) -> commands.Invocation:
    from hmig import commands

    return commands.Invocation(
        command=args.command,
        manifest_path=Path(getattr(args, "manifest", "hmig.yml")),
        env_name=getattr(args, "env", None),
        lock_wait_s=float(getattr(args, "lock_wait", 60.0)),
        yes=bool(getattr(args, "yes", False)),
        interactive=interactive,
        target=getattr(args, "target", None),
        count=getattr(args, "count", None),
        to=getattr(args, "to", None),
        dry_run=bool(getattr(args, "dry_run", False)),
        description=" ".join(getattr(args, "description", None) or []) or None,
        new_kind=getattr(args, "kind", "sql"),
        from_path=Path(args.from_path) if getattr(args, "from_path", None) else None,
        into_database=getattr(args, "into_database", None),
        confirm=getattr(args, "confirm", None),
        force=bool(getattr(args, "force", False)),
        drift_check=getattr(args, "check", None),
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a cancelled CI job) behaves like Ctrl-C: cancel, roll back, report."""
    raise KeyboardInterrupt


def _error_result(
    invocation: commands.Invocation, error: HmigError, reached: commands.Reached | None
) -> commands.Result:
    """The report of a command an error stopped: what it reached, and the error."""
    from hmig import commands, reporting

    history = reached.history if reached else None
    report = reporting.build_report(
        command=invocation.command,
        environment=reached.environment if reached else invocation.env_name,
        target=reached.target if reached else None,
        outcome=Outcome(error.outcome),
        exit_code=error.exit_code,
        hmig_version=__version__,
        applied=history.applied if history else (),
        error=error,
    )
    return commands.Result(
        outcome=Outcome(error.outcome), exit_code=ExitCode(error.exit_code), report=report
    )


class _StrictParser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigurationError(
            f"invalid hmig arguments: {message}", hint="Run `hmig --help` for the grammar."
        )


def _parser(*, strict: bool = False) -> argparse.ArgumentParser:
    kind = _StrictParser if strict else argparse.ArgumentParser
    common = kind(add_help=False)
    # SUPPRESS lets the same option appear before or after the command without the
    # subcommand's default overwriting what was given before it.
    common.add_argument(
        "--manifest", default=argparse.SUPPRESS, metavar="PATH", help="manifest (hmig.yml)"
    )
    common.add_argument("--env", default=argparse.SUPPRESS, metavar="NAME", help="environment")
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON report on stdout (human text goes to stderr)",
    )
    common.add_argument(
        "--lock-wait",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for another run's migration lock (default 60)",
    )
    common.add_argument(
        "--yes",
        action="store_true",
        default=argparse.SUPPRESS,
        help="confirm a write to a protected environment from a terminal",
    )
    parser = kind(
        prog="hmig",
        description="Safe PostgreSQL migrations for node-pg-migrate style repositories.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"hmig {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        _command_options(name, command)
    return parser


def _command_options(name: str, command: argparse.ArgumentParser) -> None:
    if name in ("plan", "apply"):
        command.add_argument(
            "--target",
            default=None,
            metavar="NAME",
            help="stop after this migration (file name without extension)",
        )
    if name == "rollback":
        which = command.add_mutually_exclusive_group()
        which.add_argument("--count", type=int, metavar="N", help="undo the last N (default 1)")
        which.add_argument("--to", metavar="NAME", help="undo everything applied after NAME")
        command.add_argument(
            "--dry-run", action="store_true", help="show the exact SQL; change nothing"
        )
    if name == "new":
        command.add_argument("description", nargs="+", help="what the migration does")
        kind = command.add_mutually_exclusive_group()
        kind.add_argument("--sql", dest="kind", action="store_const", const="sql", default="sql")
        kind.add_argument("--js", dest="kind", action="store_const", const="js")
    if name == "restore":
        command.add_argument(
            "--from", dest="from_path", required=True, metavar="PATH", help="the backup file"
        )
        command.add_argument(
            "--into-database", metavar="NAME", help="restore into a new database NAME instead"
        )
        command.add_argument(
            "--confirm", metavar="ENV", help="type the environment's name to restore over it"
        )
        command.add_argument(
            "--force", action="store_true", help="also required for a protected environment"
        )
    if name == "drift":
        command.add_argument(
            "--check",
            choices=("history", "schema", "both"),
            default=None,
            help="which checks (default: the environment's drift.check; both when it is none)",
        )
    if name == "baseline":
        command.add_argument(
            "--to", required=True, metavar="NAME", help="the last migration already in place"
        )
