"""`hmig.cli.main` as a process entry point: the garbage collector around the command.

Each case runs `main` in a fresh interpreter: it changes process-wide state on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Records the collector's state when the command starts (the engine is loaded by then) and
# after `main` returns or raises. `fail_start_up` makes the start-up raise instead.
_PROBE = """
import gc, json, sys
from hmig import cli

seen = {}
run = cli.execute

def execute(*args, **kwargs):
    seen["started"] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
    return run(*args, **kwargs)

def fail(*args, **kwargs):
    raise RuntimeError("start-up failed")

cli.execute = execute
if sys.argv[1] == "fail_start_up":
    cli._invocation = fail
try:
    seen["code"] = cli.main(sys.argv[2:])
except RuntimeError as error:
    seen["raised"] = str(error)
seen["after"] = {"enabled": gc.isenabled()}
print(json.dumps(seen))
"""


def _main_in_a_fresh_process(mode: str, *argv: str, cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "migrations").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("manifest", "exit_code"),
    [
        ("version: 1\nmigrations: {dir: migrations}\nenvironments: {dev: {}}\n", 0),
        ("version: 1\nmigrations: {dir: migrations}\nenvironments: {dev: {lock_timeout: x}}\n", 2),
    ],
    ids=["command-succeeds", "command-fails"],
)
def test_the_command_runs_with_the_engine_frozen_and_the_collector_on(
    project: Path, manifest: str, exit_code: int
) -> None:
    (project / "hmig.yml").write_text(manifest, encoding="utf-8")

    result = _main_in_a_fresh_process("run", "validate", cwd=project)

    assert result["code"] == exit_code
    # Frozen before the command starts: psycopg, jsonschema, pglast, … are tens of thousands.
    assert result["started"] == {"enabled": True, "frozen": pytest.approx(80_000, rel=0.5)}
    assert result["after"] == {"enabled": True}


def test_a_failing_start_up_leaves_the_collector_on(project: Path) -> None:
    result = _main_in_a_fresh_process("fail_start_up", "validate", cwd=project)

    assert result["raised"] == "start-up failed"
    assert "started" not in result
    assert result["after"] == {"enabled": True}
