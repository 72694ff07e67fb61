"""Exceptions shared across the package (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations

import json
import os
import re


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


def json_problem(err: json.JSONDecodeError, *, with_line: bool = True) -> str:
    """What is wrong in a JSON text and where, for a message: the json module's ``msg`` ends in
    "at" for some errors ("Invalid control character at"), which a message adding "at column N"
    would double.

    Example:
        >>> try:
        ...     json.loads('"x\\x01"')  # a raw control character in a string
        ... except json.JSONDecodeError as err:
        ...     json_problem(err)
        'Invalid control character at line 1, column 3'
    """
    where = f"line {err.lineno}, column {err.colno}" if with_line else f"column {err.colno}"
    return f"{err.msg.removesuffix(' at')} at {where}"


def with_article(word: str) -> str:
    """``word`` after "a" or "an", by its first letter (quotes skipped): the usual rule, enough for
    the names messages quote (model types, formats).

    Example:
        >>> with_article("'electra'"), with_article("'bert'")
        ("an 'electra'", "a 'bert'")
    """
    letters = re.sub(r"^[^A-Za-z0-9]+", "", word)
    return f"{'an' if letters[:1].lower() in tuple('aeiou') else 'a'} {word}"


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
