"""Finds the external programs hmig runs and checks that they are recent enough.

Each lookup takes the environment as a mapping (never `os.environ`) and raises `ToolMissing`
naming what it found and how to fix it. It must not run a tool for anything but identifying
it: using the tool is the adapters' job.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from hmig._subprocess import run
from hmig.errors import ToolMissing

# node-pg-migrate 9.0.0 declares engines.node ">=20.11.0" (its package.json).
NODE_MINIMUM = (20, 11)
_NODE_HINT = "Install Node.js 20.19 or newer (22 LTS recommended), or set HMIG_NODE to its path."
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
