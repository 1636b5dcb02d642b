"""hmig: safe PostgreSQL migrations for node-pg-migrate style repositories."""

from __future__ import annotations

__version__ = "0.1.0"
