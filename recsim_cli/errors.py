"""User errors of the ``recsim`` command line: a message and exit status 2, no traceback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["USER_ERRORS", "UsageError", "check_writable"]


class UsageError(ValueError):
    """A command-line argument is wrong; the message says which and how to fix it."""


# Raised by the environment, the datasets and the configs on bad input (each names the argument and what was given);
# the CLI prints them alone. RECSIM_DEBUG=1 shows the traceback instead.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError)


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and check a file can be written there, before any long work whose results it will hold."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UsageError(f"--out {str(folder)!r} is not a writable folder ({err.strerror or err}); choose another.") from None
    return path
