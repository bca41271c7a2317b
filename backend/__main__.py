"""`python -m backend analyze PATH...`: the batch command (backend/cli.py)."""

import sys

from backend.cli import main

sys.exit(main())
