"""`python -m hmig`: the same entry point as the `hmig` console script."""

from __future__ import annotations

from hmig.cli import main

raise SystemExit(main())
