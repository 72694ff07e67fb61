"""Progress bars on a terminal; occasional plain log lines anywhere else.

tqdm redraws its bar with carriage returns: in a log file (stderr redirected, a batch job) those
redraws pile up into one line thousands of characters long. When stderr is not a terminal (nor a
notebook, where tqdm draws a widget), :func:`progress_bar` returns a :class:`LoggedBar` instead: the
same tqdm object for the code that advances it, but each refresh becomes a log line, at most one
every :data:`LOG_EVERY_S` seconds, and one at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

logger = logging.getLogger("attnaudit.progress")

#: seconds between two progress lines in a log: a line a minute or two on a long stage, none on a
#: stage shorter than this (its start and end are logged by the stage itself)
LOG_EVERY_S = 30.0


class _Nowhere:
    """A file that drops what tqdm writes around its display (newlines at close)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


if TYPE_CHECKING:  # the stubs make tqdm generic; the class itself is not subscriptable
    _Bar = plain_tqdm[Any]
else:
    _Bar = plain_tqdm


class LoggedBar(_Bar):
    """A tqdm bar that logs ``desc: n/total unit (p%), elapsed, left, rate`` instead of drawing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_log = time.monotonic()
        self._logged_n: float = 0
        kwargs["file"] = _Nowhere()
        kwargs["mininterval"] = 0.0  # tqdm then offers every update; display() keeps a few
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        if msg is not None:  # close() clearing a bar that is not kept: nothing to say
            return
        done = self.total is not None and self.n >= self.total
        now = time.monotonic()
        if self.n == self._logged_n or (not done and now - self._last_log < LOG_EVERY_S):
            return
        self._last_log, self._logged_n = now, self.n
        stats = self.format_dict
        elapsed = self.format_interval(stats["elapsed"])
        rate = self.n / stats["elapsed"] if stats["elapsed"] > 0 else 0.0
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        left = ""
        if self.total and rate > 0 and not done:
            left = f", about {self.format_interval((self.total - self.n) / rate)} left"
        postfix = f", {stats['postfix']}" if stats.get("postfix") else ""
        logger.info("%s: %s/%s %s%s, %s elapsed%s, %.1f %s/s%s", self.desc or "progress", self.n,
                    self.total if self.total is not None else "?", self.unit, share, elapsed,
                    left, rate, self.unit, postfix)


def draws_bars() -> bool:
    """Whether a drawn bar reaches a person: a terminal, or a notebook (tqdm.auto's widget)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(iterable: Iterable[Any] | None = None, *, disable: bool = False,
                 **kwargs: Any) -> plain_tqdm[Any]:
    """``tqdm(iterable, **kwargs)`` on a terminal; a :class:`LoggedBar` when stderr is a file."""
    if disable or draws_bars():
        return tqdm(iterable, disable=disable, **kwargs)
    return LoggedBar(iterable, **kwargs)


__all__ = ["LOG_EVERY_S", "LoggedBar", "draws_bars", "progress_bar"]
