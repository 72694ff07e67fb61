"""Exceptions shared across the package (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data or settings. The message names the file, line or field at fault."""
