"""One writer per run folder: the lock every command takes before it deletes or replaces anything.

``attnaudit run``, ``train``, ``audit`` and ``report`` hold ``<folder>/.lock`` while they work on a
folder (a pipeline run, or a model folder), and clean the temporary files that a killed command
left there only while holding it: a temporary file of a write in progress belongs to the holder.
A second command on the same folder stops at once with one line naming the first (what it is,
pid, host, start time; the lock file also records its command line) rather than waiting: a run
takes minutes to hours and both would do the same work; the same command run again after the first
one ends reuses everything that finished.

The lock is an OS lock (``flock``), released by the kernel when its holder dies, so a killed
command never leaves a stale lock behind; the file's text only describes the holder for the
message. Written by hand on ``fcntl`` (the ``filelock`` package neither records a holder nor
offers the no-wait, reentrant use below).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from attnaudit.errors import DataError

LOCK_FILE = ".lock"

F = TypeVar("F", bound=Callable[..., Any])

#: folders this process holds, with how many nested holds: a command that holds a run folder
#: takes it again for its report (and a model folder for training, then for its audit)
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


def _holder_text(command: str) -> str:
    from attnaudit.utils.io import command_line

    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "what": command,
        "command": command_line(),
    })


def _describe(text: str) -> str:
    """The holder as a message names it, from the lock file's text (old files hold a bare pid)."""
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return f"pid {text.strip() or 'unknown'}"
    return (f"{info.get('what', 'attnaudit')}, pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, started {info.get('started', '?')}")


def _is_other_rank() -> bool:
    """Under torchrun, ranks other than 0: rank 0 holds the folder for all of them."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], command: str, *,
                required: bool = True) -> Iterator[bool]:
    """Hold ``folder/.lock`` within the block; yields whether this process holds it.

    Reentrant within a process (nested holds of one folder share the lock). Under torchrun only
    rank 0 takes it (the other ranks yield True: they work under rank 0's hold).

    Args:
        folder: the run or model folder (created if missing).
        command: what holds it, for the other command's message (``"attnaudit run"``).
        required: when another process holds it, raise (True), or yield False (a report, which
            then only writes, atomically, and deletes nothing).
    Raises:
        DataError: another process holds the folder and ``required`` is True; one line naming it.
    """
    if _is_other_rank():
        yield True
        return
    path = Path(folder)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    with _held_guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield True
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    with open(path / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            taken = True
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            taken = False
        if not taken:
            handle.seek(0)
            if required:
                raise DataError(
                    f"{path} is in use by another command ({_describe(handle.read())}); "
                    "wait for it to end, then run this command again (it reuses everything "
                    "finished), or stop that command"
                )
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(_holder_text(command))
        handle.flush()
        with _held_guard:
            _held[key] = 1
        try:
            yield True
        finally:
            with _held_guard:
                del _held[key]
            if created and os.listdir(path) == [LOCK_FILE]:
                # a command that failed before writing anything (bad data, a typo) leaves no
                # folder behind, as it did before it took a lock
                os.unlink(path / LOCK_FILE)
                path.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)


def holding_folder(argument: str, command: str) -> Callable[[F], F]:
    """Decorate a function so that it runs holding the folder given as its ``argument``.

    Example:
        >>> @holding_folder("out", "attnaudit example")
        ... def write(out: str) -> None: ...
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            folder = bound.arguments[argument]
            with folder_lock(folder, command):
                return function(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate


__all__ = ["LOCK_FILE", "folder_lock", "holding_folder"]
