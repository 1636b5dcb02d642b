"""Runs `.js` migrations through node-pg-migrate's own MigrationBuilder in one Node process.

The package's only public names are re-exported here; it must not import other adapters.
"""

from __future__ import annotations

from hmig.node.bridge import BRIDGE_DIR, BridgeLog, NodeBridge

__all__ = ["BRIDGE_DIR", "BridgeLog", "NodeBridge"]
