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
from plugin_host.registry.models import UNIX_SOCKET_PATH_MAX as _MAX_SOCKET_PATH

__all__ = ["bind_unix_socket", "claim_socket_path", "is_served"]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT = 1.0


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


async def claim_socket_path(path: Path) -> None:
    """Make ``path`` free to bind: remove a stale socket, refuse a live one or anything that is not a socket."""
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ConfigError(
            f"socket path {str(path)!r} is {len(os.fsencode(path))} bytes long, "
            f"expected at most {_MAX_SOCKET_PATH} (the Unix socket limit)"
        )
    try:
        mode = (await anyio.Path(path).lstat()).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUseError(f"cannot serve on {str(path)!r}: it exists and is not a socket, expected a free path")
    if await is_served(path):
        raise SocketInUseError(
            f"cannot serve on socket {str(path)!r}: another process is serving it, expected a free or stale socket"
        )
    logger.info("replacing stale socket %s", path)
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
