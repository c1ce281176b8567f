"""``python -m claims`` is the ``trpo-claims`` command."""

import sys

from claims.cli.main import main

sys.exit(main())
