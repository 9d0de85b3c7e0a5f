"""Reading a creator's files safely: the kind of file is checked before it is opened, and at
most the size limit plus one byte is read, so a folder, a FIFO, a device or a huge file gives
one clear :class:`~videogen_domain.errors.InputError` instead of a traceback, a hang or a
MemoryError.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from videogen_domain.errors import InputError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: str | Path, *, field: str | None = None) -> os.stat_result:
    """The ``stat`` of ``path``, or InputError unless it is a regular file that exists."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found; check the path", file=path, field=field) from None
    except PermissionError:
        raise InputError(
            "permission denied; make the file readable", file=path, field=field
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot be read ({exc.strerror or exc}); check the path", file=path, field=field
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"is {_kind(st.st_mode)}, not a regular file; give the path of a file",
            file=path,
            field=field,
        )
    return st


def read_limited(path: str | Path, limit: int, *, field: str | None = None) -> bytes:
    """The bytes of the regular file ``path``: at most ``limit + 1`` of them are read.

    A result longer than ``limit`` means the file is too large; the caller words that error.
    The file is opened non-blocking, so a FIFO swapped in after the check cannot hang the read.
    """
    check_regular_file(path, field=field)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise InputError(
            "permission denied; make the file readable", file=path, field=field
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot be read ({exc.strerror or exc}); check the path", file=path, field=field
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(
                "is not a regular file; give the path of a file", file=path, field=field
            )
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                raise InputError(
                    f"cannot be read ({exc.strerror or exc})", file=path, field=field
                ) from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
