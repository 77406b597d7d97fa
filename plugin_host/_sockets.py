"""Unix socket paths the host serves on: claim a path (replace a stale socket, refuse a live one) and bind it.

Every server of the host (device plugins, the admin socket, later kubelet and CSI registration) goes through here,
so "already in use" and "stale socket" mean the same thing everywhere.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

import anyio

from plugin_host.errors import ConfigError, SocketInUseError

__all__ = [
    "UNIX_SOCKET_PATH_MAX",
    "bind_unix_socket",
    "check_socket_path_length",
    "claim_socket_path",
    "is_served",
    "remove_socket_if_ours",
    "socket_path_excess",
]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT = 1.0

# sun_path is 108 bytes on Linux including the terminating NUL.
UNIX_SOCKET_PATH_MAX = 107


def socket_path_excess(path: str | os.PathLike[str]) -> int | None:
    """The length of ``path`` in bytes when it is too long for a Unix socket, else None.

    Callers word the error themselves (a registration answer, a config error); this is the one place that knows the
    limit and counts bytes, not characters.
    """
    size = len(os.fsencode(path))
    return size if size > UNIX_SOCKET_PATH_MAX else None


def check_socket_path_length(path: str | os.PathLike[str], *, what: str = "socket", hint: str = "") -> None:
    """Raise :class:`ConfigError` when ``path`` is too long for a Unix socket; ``what`` names it, ``hint`` says which
    setting to change."""
    size = socket_path_excess(path)
    if size is not None:
        raise ConfigError(
            f"{what} path {str(os.fspath(path))!r} is {size} bytes long, expected at most {UNIX_SOCKET_PATH_MAX}"
            f" (the Unix socket limit){hint}"
        )


async def is_served(path: Path) -> bool:
    """Whether a live process accepts connections on the socket at ``path``."""
    try:
        with anyio.fail_after(_PROBE_TIMEOUT):
            probe = await anyio.connect_unix(path)
    except TimeoutError:
        return True  # someone holds it but is slow to accept: not ours to take
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        raise SocketInUseError(f"cannot serve on socket {str(path)!r}: probing it failed ({exc})") from exc
    await probe.aclose()
    return True


async def claim_socket_path(path: Path, *, what: str = "socket", in_use: str | None = None, hint: str = "") -> None:
    """Make ``path`` free to bind: remove a stale socket, refuse a live one or anything that is not a socket.

    ``what`` names the socket in messages ("admin socket"); ``in_use`` replaces the message for a live server;
    ``hint`` is appended to the message for an over-long path (which setting to change).
    """
    check_socket_path_length(path, what=what, hint=hint)
    try:
        mode = (await anyio.Path(path).lstat()).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUseError(f"cannot serve the {what} {str(path)!r}: it exists and is not a socket")
    if await is_served(path):
        raise SocketInUseError(
            in_use
            or f"cannot serve the {what} {str(path)!r}: it is already in use (another process is serving it),"
            " expected a free or stale socket"
        )
    logger.info("replacing stale %s %s", what, path)
    await anyio.Path(path).unlink(missing_ok=True)


def bind_unix_socket(path: Path) -> socket.socket:
    """Bind a non-blocking Unix socket at ``path`` with mode 0600 (not yet listening)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        # Nobody can connect before listen(), so tightening the mode here leaves no window open.
        os.chmod(path, 0o600)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        exc.add_note(f"while binding Unix socket {str(path)!r}")
        raise
    return sock


def remove_socket_if_ours(path: Path, inode: int | None) -> None:
    """Unlink ``path`` only if it is still the socket we bound (same inode): a successor may have claimed it since."""
    if inode is None:
        return
    try:
        if path.stat().st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass
