"""`hmig.cli.main` as a process entry point: the garbage collector it leaves behind.

Each case runs `main` in a fresh interpreter: it changes process-wide state on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import gc, json, sys
from hmig.cli import main
before = gc.get_freeze_count()
code = main(sys.argv[1:])
frozen = gc.get_freeze_count() - before
print(json.dumps({"code": code, "enabled": gc.isenabled(), "frozen": frozen}))
"""


def _main_in_a_fresh_process(*argv: str, cwd: Path) -> dict[str, int | bool]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, int | bool] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("manifest", "exit_code"),
    [
        ("version: 1\nmigrations: {dir: migrations}\nenvironments: {dev: {}}\n", 0),
        ("version: 1\nmigrations: {dir: migrations}\nenvironments: {dev: {lock_timeout: x}}\n", 2),
    ],
    ids=["command-succeeds", "command-fails"],
)
def test_main_leaves_the_collector_on_and_start_up_frozen(
    tmp_path: Path, manifest: str, exit_code: int
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "hmig.yml").write_text(manifest, encoding="utf-8")

    result = _main_in_a_fresh_process("validate", cwd=tmp_path)

    assert result["code"] == exit_code
    assert result["enabled"] is True
    # The engine's modules (psycopg, jsonschema, pglast, …) are tens of thousands of objects.
    assert int(result["frozen"]) > 10_000
