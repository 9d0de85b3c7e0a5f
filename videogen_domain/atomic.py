"""Atomic file writes: write a temporary file beside the target, fsync, then rename.

The temporary file is named ``.<target name>.<writer pid>-<random><suffix>``, so a file left by a
writer that was killed (SIGKILL, power loss: no ``finally`` ran) can be told from one still being
written; `remove_stale_temp_files` clears such files under a folder, and the next write of the
same file clears that file's own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>[0-9]+)-[a-z0-9_]+")


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    The temporary file keeps ``target``'s suffix (so tools like ffmpeg pick the right muxer).
    On any error the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps_of(target)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}-",
        suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically and return the target path."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps_of(target: str | Path) -> list[Path]:
    """Delete the temporary files of earlier writes of ``target`` whose writer no longer exists
    (a write killed with SIGKILL: its process, or the run or machine around it, died).

    `atomic_path` calls it before each write, so the write that replaces a file also clears
    what a killed write of that file left behind. Returns what was deleted.
    """
    target = Path(target)
    removed: list[Path] = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        match = _TEMP_NAME.match(path.name)
        if match is None or match["target"] != target.name or not path.is_file():
            continue
        if process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files under ``folder`` whose writer process no longer exists.

    Returns what was deleted. Files being written by live processes are left alone.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.rglob(".*"):
        match = _TEMP_NAME.match(path.name)
        if match is None or not path.is_file() or process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
