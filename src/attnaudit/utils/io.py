"""Crash-safe file writing and run metadata.

Every result file is written to a temporary name in the same folder and renamed into place, so an
interrupted run never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from attnaudit.errors import DataError, json_problem


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The temporary file is ``flock``-ed while the write lasts, which tells it from one a killed
    write left (:func:`remove_stale_temp_files`); those of ``path`` itself are deleted first, so
    every command cleans up after its own killed writes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(p for p in target.parent.glob(f".{glob.escape(target.name)}.*.tmp")
                  if _TEMP_NAME.fullmatch(p.name))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # in use until this write ends; released when fd is closed
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; results are meant to be shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except OSError as err:
        if err.filename is not None:
            raise
        # A failed write (disk full, quota, I/O error) names no file: name the one being written.
        raise OSError(err.errno, err.strerror or str(err), os.fspath(target)) from err
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        os.close(fd)


# What atomic_path's mkstemp names look like: ".<target name>.<8 random characters>.tmp".
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def remove_stale_temp_files(
    folder: str | os.PathLike[str], *, exclude: Sequence[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Delete the temporary files that writes killed mid-way (SIGKILL, power loss) left under
    ``folder`` (outside the ``exclude`` folders); returns their paths.

    A killed write leaves its target untouched, so these files hold nothing of value. A write in
    progress holds its temporary file's ``flock`` (:func:`atomic_path`), so its file is kept; call
    this holding the folder's lock (:func:`attnaudit.utils.lock.folder_lock`) all the same, which
    also keeps out writers that are not ours.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    skip = [Path(p) for p in exclude]
    return _remove_stale(p for p in root.rglob(".*.tmp") if _TEMP_NAME.fullmatch(p.name)
                         and not any(p.is_relative_to(s) for s in skip))


def _remove_stale(candidates: Iterable[Path]) -> list[Path]:
    """Delete the ``candidates`` (temporary files) that no live write holds; returns them."""
    removed = []
    for path in candidates:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a write in progress (this process's or another's)
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
        yield f


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON value in ``path``.

    Raises:
        DataError: the file is not valid JSON (damaged, or edited by hand), naming it.
    """
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            why = json_problem(err) if isinstance(err, json.JSONDecodeError) else err
            raise DataError(f"{os.fspath(path)} is damaged (not valid JSON: {why}); delete it "
                            "or restore it, then run the command again") from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that can change a result."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("attnaudit", "torch", "numpy", "pandas", "pyarrow", "blingfire"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_info(seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """What to store beside every result: config, seed, versions and a timestamp."""
    return {
        "seed": seed,
        "config": config,
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
    }


def command_line() -> str:
    """This process's command, shell-quoted so that pasting it into a shell runs it again.

    ``python -m attnaudit.cli ...`` stays a module call (``sys.argv[0]`` would be the path of
    ``cli.py``), a console script is named as typed when it is the one on ``PATH``, and a process
    that torchrun started is given as a torchrun command with its process count (the launcher's own
    flags are not visible to its workers; ``--standalone`` on one machine).

    Example:
        >>> command_line()  # doctest: +SKIP
        "attnaudit audit 'runs/my run/models/flan-rnn' --max-docs 100"
    """
    args = list(sys.argv[1:])
    original = list(getattr(sys, "orig_argv", []))
    module = None
    if "-m" in original[:-1] and original[original.index("-m") + 1:][1:] == args:
        module = original[original.index("-m") + 1]
    script = sys.argv[0] if sys.argv else ""
    name = os.path.basename(script)
    on_path = shutil.which(name) if name else None
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(script):
        script = name
    local = os.environ.get("LOCAL_WORLD_SIZE")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if local is not None and size > 1:  # a torchrun worker
        nodes = max(1, size // max(1, int(local)))
        launcher = ["torchrun", *(["--standalone"] if nodes == 1 else ["--nnodes", str(nodes)]),
                    "--nproc-per-node", local]
        program = ["-m", module] if module is not None else [sys.argv[0]]
        return shlex.join([*launcher, *program, *args])
    if module is not None:
        return shlex.join([original[0], "-m", module, *args])
    return shlex.join([script, *args])
