"""``python -m claims`` is the ``trpo-claims`` command."""

import sys

from claims.cli import main

sys.exit(main())
