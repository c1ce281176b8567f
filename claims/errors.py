"""The command line's own exception: a mistake in the arguments (exit status 2).

Kept apart from :mod:`claims.cli` so the subcommand modules it imports can raise it without
importing the CLI back (an import cycle).
"""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in the command line; main() prints it and exits with status 2."""
