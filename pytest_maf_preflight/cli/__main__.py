"""``python -m pytest_maf_preflight.cli`` runs ``maf-preflight``."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
