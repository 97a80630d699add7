"""Errors in what the user gave, and how command lines show them: one line, ``error: FILE: what is wrong; what
was expected``, exit status 2; the traceback only with ``--debug``. Internal errors keep their tracebacks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

EXIT_USAGE = 2


class UserError(Exception):
    """An input the user gave is wrong: printed as ``error: FILE: message`` (exit 2), no traceback."""

    def __init__(self, file: str | os.PathLike, message: str):
        file = str(file)
        message = str(message).replace("\n", " ")
        message = message[len(file) + 2 :] if message.startswith(f"{file}: ") else message
        super().__init__(f"{file}: {message}")
        self.file, self.message = file, message


# What a command line treats as the user's mistake: missing or unreadable files, bad values in inputs and
# configs (ptx's data, checkpoint and conversion errors derive from these). Anything else is a bug: traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, OSError, ValueError, KeyError, IndexError)


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (a KeyError's quotes removed)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    return " ".join(str(message).split())


def run_reporting_user_errors(fn: Callable[[], int | None], *, debug: bool) -> int:
    """``fn()``'s exit status; a user error prints one line to stderr and gives 2 (re-raised with ``debug``)."""
    try:
        return int(fn() or 0)
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {one_line(e)} (--debug shows where)", file=sys.stderr)
        return EXIT_USAGE
