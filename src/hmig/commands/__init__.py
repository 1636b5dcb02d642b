"""The commands: adapters wired to the core, one module per family of commands."""

from __future__ import annotations

from hmig.commands._common import Console, Invocation, Reached, Result, reached_in
from hmig.commands.drift import drift
from hmig.commands.engine import apply, plan, status, validate
from hmig.commands.lifecycle import baseline, new, repair, rollback
from hmig.commands.recovery import backup, backups, restore

__all__ = [
    "Console",
    "Invocation",
    "Reached",
    "Result",
    "apply",
    "backup",
    "backups",
    "baseline",
    "drift",
    "new",
    "plan",
    "reached_in",
    "repair",
    "restore",
    "rollback",
    "status",
    "validate",
]
