"""The one exception type for mistakes a user can fix; the CLI prints it as one line."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed as one line on stderr, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
