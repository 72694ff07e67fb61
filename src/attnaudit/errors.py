"""Exceptions shared across the package (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations

import os


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of ``err``'s message, cut to ``limit`` characters, for a one-line error that
    quotes a library's reason; the exception's type name when its message is empty.

    Example:
        >>> first_line(OSError("no such file\\nTraceback ..."))
        'no such file'
        >>> first_line(ValueError())
        'ValueError'
    """
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:limit]


class DataError(ValueError):
    """Bad input data or settings. The message names the file, line or field at fault."""


class DamagedFileError(DataError):
    """A saved file (``model.pt``, ``state.pt``) that cannot be read: truncated or corrupt.

    Attributes:
        path: the damaged file.
    """

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(message)
        self.path = os.fspath(path)
