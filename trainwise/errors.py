"""User-facing errors.

Every mistake a user can make (a bad config value, missing data, labels out of range, NaN inputs ...)
raises :class:`UserError`. Its message is one line that says what was expected, what was received and
how to fix it. The CLI prints it without a traceback and exits with code 2; the Python API lets it
propagate so notebooks show it as an ordinary exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input, reported as one actionable line (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, what: str, *, expected: str | None = None, received: object = None, fix: str | None = None):
        parts = [what.rstrip(".")]
        if expected is not None:
            parts.append(f"expected {expected}")
        if received is not None:
            parts.append(f"received {received!r}" if not isinstance(received, str) else f"received {received}")
        message = "; ".join(parts) + "."
        if fix:
            message += f" Fix: {fix.rstrip('.')}."
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))  # one line, whatever the user's text holds


class RunFinished(UserError):
    """``resume`` on a run that has nothing left to do: the CLI prints the message and exits 0, writing nothing."""

    exit_code = 0

    def __init__(self, message: str):
        Exception.__init__(self, message)


def unknown_name(kind: str, name: str, valid: Iterable[str], *, key: str | None = None) -> UserError:
    """An error for an unknown registry name that lists the valid ones and suggests the closest."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    where = f" (in {key})" if key else ""
    return UserError(
        f"unknown {kind} {name!r}{where}",
        expected=f"one of {', '.join(valid)}",
        fix=f"{hint}use one of the names listed",
    )
