"""What the benchmarks share: the server they may use, hmig's location, process helpers.

Imported by `bench/run.py`, `bench/lock_safety.py` and `bench/backup.py` (run as scripts, so this
folder is on `sys.path`). Benchmarks only: nothing here is part of hmig.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import sys
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


URL_ENV = "HMIG_BENCH_DATABASE_URL"


NOISY = 1.25  # max/min of one contender's runs above which the figures are flagged


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def freeze_hmig(dest: Path) -> Path:
    """Copy the hmig package this Python imports to `dest` (edits to src/ cannot reach the run)."""
    spec = importlib.util.find_spec("hmig")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--freeze: this Python cannot import hmig")
    source = Path(next(iter(spec.submodule_search_locations)))
    shutil.copytree(
        source, dest / "hmig", ignore=shutil.ignore_patterns("__pycache__", "node_modules")
    )
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
