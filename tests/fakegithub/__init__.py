"""A fake GitHub REST API on loopback for hmig's GitHub client tests (see `server.py`).

`FakeGitHub` is the server, `Fault` a misbehaviour to inject, `Recorded` a request it saw.
`spec` holds GitHub's OpenAPI description and recorded answers to check answers against.
"""

from __future__ import annotations

from tests.fakegithub.server import FakeGitHub, Fault, Recorded, iter_links

__all__ = ["FakeGitHub", "Fault", "Recorded", "iter_links"]
