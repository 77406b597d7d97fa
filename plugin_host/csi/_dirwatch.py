"""Seeing the sockets of one directory: a scan, and wake-ups when its entries change.

On Linux the wake-ups come from inotify (through ctypes: the standard library has no binding), so a new socket is
seen as soon as it is bound. Elsewhere, or when inotify cannot be set up, the caller's periodic rescan is all there
is. Either way the scan is the truth: an inotify event only says "look again".
"""

from __future__ import annotations

import ctypes
import logging
import os
import stat
import struct
from pathlib import Path

import anyio

__all__ = ["DirectoryChanges", "SocketId", "scan_sockets"]

logger = logging.getLogger(__name__)

SocketId = tuple[int, int]
"""(st_dev, st_ino): a socket replaced at the same path is a different socket."""

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_ATTRIB = 0x004
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_IGNORED = 0x8000
_MASK = _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT_HEADER = struct.Struct("iIII")


def scan_sockets(directory: Path) -> dict[str, SocketId]:
    """The Unix sockets directly in ``directory`` (names starting with ``.`` skipped), by absolute path.

    A missing directory has no sockets. Symbolic links are not followed: a registration socket is the real file.
    """
    found: dict[str, SocketId] = {}
    try:
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                found[os.path.join(os.fspath(directory), entry.name)] = (st.st_dev, st.st_ino)
    return found


class DirectoryChanges:
    """Wait until ``directory`` may have changed, or ``timeout`` passes. Use as a context manager."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._fd: int | None = None
        self._watching = False
        self._libc: ctypes.CDLL | None = None

    @property
    def native(self) -> bool:
        """Whether inotify delivers changes (otherwise only the timeout wakes the caller)."""
        return self._fd is not None

    def __enter__(self) -> DirectoryChanges:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init = libc.inotify_init1
        except (OSError, AttributeError):
            logger.debug("inotify is not available; %s is only rescanned periodically", self._directory)
            return self
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            logger.debug("inotify_init1 failed (errno %d); rescanning periodically", ctypes.get_errno())
            return self
        self._libc, self._fd = libc, fd
        self._watch()
        return self

    def __exit__(self, *exc_info: object) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _watch(self) -> None:
        if self._fd is None or self._libc is None or self._watching:
            return
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(self._directory), _MASK)
        self._watching = wd >= 0

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - the rescan period, not a deadline
        """Return when the directory's entries changed (as far as inotify tells) or after ``timeout`` seconds."""
        self._watch()  # again, in case the directory was (re)created since
        if self._fd is None or not self._watching:
            await anyio.sleep(timeout)
            return
        with anyio.move_on_after(timeout):
            await anyio.wait_readable(self._fd)
            self._drain()

    def _drain(self) -> None:
        assert self._fd is not None
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return
            offset = 0
            while offset + _EVENT_HEADER.size <= len(data):
                _wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
                offset += _EVENT_HEADER.size + length
                if mask & _IN_IGNORED:
                    # The directory went away (or was moved): watch it again once it is back.
                    self._watching = False
