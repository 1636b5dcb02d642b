"""What the benchmarks share: the server they may use, hmig's location, process helpers.

Imported by the scripts in `bench/` (run as scripts, so this folder is on `sys.path`): the timed
command runner, the bench-only npm packages (`bench/package.json`), hmig's location and a frozen
copy of it. Benchmarks only: nothing here is part of hmig, and nothing here judges a figure.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


URL_ENV = "HMIG_BENCH_DATABASE_URL"


NOISY = 1.25  # max/min of one contender's runs above which the figures are flagged


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


# bench/package.json and package-lock.json: the other tools hmig is timed against.
NPM_PREFIX = REPO / "bench"
NODE_MODULES = NPM_PREFIX / "node_modules"
_NODE_MODULES = re.compile(r"/node_modules/")  # not byte-compiled: Node's, linked
NPM_BIN = NODE_MODULES / "node-pg-migrate/bin/node-pg-migrate.js"


class BenchError(Exception):
    """A command failed or did not do the work: reported as an error, never as a figure."""


@dataclass(frozen=True, slots=True)
class Ran:
    """One finished command: wall clock, the client's CPU time, its output."""

    wall_s: float
    cpu_s: float  # user + sys of the command and the children it waited for (pg_dump …)
    stdout: str
    stderr: str


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the command's process group (hmig cancels and cleans up), SIGKILL after grace."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run(argv: Sequence[str], *, env: dict[str, str], cwd: Path, timeout_s: float) -> Ran:
    """Run a command to its end, timing it from before it starts to after it exits.

    It gets its own process group, so an interruption of this script stops it and its
    children (pg_dump's workers) by that group's id. A non-zero exit is a `BenchError`.
    """
    cpu_before = children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        _stop_group(proc)
        raise BenchError(f"{Path(argv[0]).name} did not finish within {timeout_s:g} s") from exc
    except BaseException:
        _stop_group(proc)
        raise
    wall = time.perf_counter() - started
    ran = Ran(
        wall_s=wall,
        cpu_s=children_cpu() - cpu_before,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
    )
    if proc.returncode != 0:
        detail = (ran.stderr.strip() or ran.stdout.strip()).splitlines()[-3:]
        raise BenchError(
            f"{Path(argv[0]).name} {' '.join(argv[1:4])} … exit code {proc.returncode}: "
            + " | ".join(detail)
        )
    return ran


def first_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The first line a `--version` command prints, or `?`."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=30, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def npm_install(*, always: bool) -> str | None:
    """Install bench/package-lock.json with `npm ci --prefix bench`; None, or why it could not.

    `always`: reinstall even when node_modules looks complete (the one-command run does, so the
    lock file is what runs). Never touches hmig's own bridge or the tests' packages.
    """
    wanted = (NPM_BIN, NODE_MODULES / "dbmate/package.json")
    if not always and all(path.is_file() for path in wanted):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found on PATH"
    print(f"npm ci --prefix {NPM_PREFIX}", file=sys.stderr, flush=True)
    done = subprocess.run(
        [npm, "ci", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund", "--loglevel=error"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        said = [x for x in (done.stderr or done.stdout).splitlines() if x.strip() != "npm error"]
        return "npm ci failed: " + " | ".join(x.strip() for x in said[:4])
    missing = [str(path) for path in wanted if not path.is_file()]
    return f"npm ci left out {', '.join(missing)}" if missing else None


def dbmate_binary() -> Path | None:
    """The Go binary the `dbmate` npm package installed for this platform (its optional dep).

    `node_modules/.bin/dbmate` is a Node wrapper that only spawns this binary (`dist/cli.js`);
    timing the binary leaves Node's start-up out of dbmate's figures, in its favour.
    """
    machine = {"x86_64": "x64", "aarch64": "arm64", "armv7l": "arm", "i686": "ia32"}
    arch = machine.get(os.uname().machine, os.uname().machine)
    found = NODE_MODULES / f"@dbmate/{sys.platform}-{arch}/bin/dbmate"
    return found if found.is_file() else None


def hmig_command(override: str | None, frozen: Path | None) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and extra environment that start hmig: a frozen copy, --hmig, the venv's."""
    if frozen is not None:
        return [sys.executable, "-m", "hmig"], {"PYTHONPATH": str(frozen)}
    return [find_hmig(override)], {}


def freeze_hmig(dest: Path) -> Path:
    """Copy the hmig package this Python imports to `dest` (edits to src/ cannot reach the run).

    The Node bridge's node_modules is linked, not copied: it is installed from its lock file,
    not edited, and `.js` migrations need it. The copy is byte-compiled, as `pip install`
    compiles the wheel in the Docker image: without it every timed run would compile hmig's
    source again (PYTHONDONTWRITEBYTECODE, set on this machine, stops Python caching it).
    """
    spec = importlib.util.find_spec("hmig")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--freeze: this Python cannot import hmig")
    source = Path(next(iter(spec.submodule_search_locations)))
    shutil.copytree(
        source, dest / "hmig", ignore=shutil.ignore_patterns("__pycache__", "node_modules")
    )
    modules = source / "node/bridge/node_modules"
    if modules.is_dir():
        (dest / "hmig/node/bridge/node_modules").symlink_to(modules, target_is_directory=True)
    if not compileall.compile_dir(dest / "hmig", quiet=1, rx=_NODE_MODULES):
        raise SystemExit(f"--freeze: cannot byte-compile the copy in {dest}")
    return dest


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def check_loopback(dsn: str) -> None:
    """Refuse a server that is not on this machine: the benchmark stays local."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--dsn must be a postgresql:// URL, got scheme {parts.scheme!r}")
    host = parts.hostname or ""
    if host and host not in LOOPBACK_HOSTS and not host.startswith("/"):
        raise SystemExit(f"--dsn host {host!r} is not loopback; this benchmark stays local")


def load_average() -> str:
    """The 1/5/15-minute load averages, for judging how busy the machine was."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def find_hmig(override: str | None) -> str:
    """hmig from --hmig, beside this Python, or the repository's venv."""
    if override:
        return override
    for candidate in (Path(sys.executable).parent / "hmig", REPO / ".venv/bin/hmig"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("hmig")
    if found is None:
        raise SystemExit("hmig not found: pass --hmig PATH")
    return found


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without variables that would redirect a child's connection."""
    env = dict(os.environ)
    for name in ("DATABASE_URL", URL_ENV, "PGOPTIONS", "PGDATABASE", "PGSERVICE"):
        env.pop(name, None)
    return {**env, **(extra or {})}


def database_url(dsn: str, name: str) -> str:
    """`dsn` (a postgresql:// URL) pointed at database `name`."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--dsn must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def scratch(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A temp folder for one run, removed at the end unless `keep` (then its path is printed)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
