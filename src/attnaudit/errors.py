"""Exceptions shared across the package (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations

import os


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
