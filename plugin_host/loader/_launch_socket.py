"""Where a launched plugin may listen: a fresh private directory per launch, and the proof its socket is its own.

go-plugin's client creates a directory (``os.MkdirTemp(TempDir, "plugin-dir")``) and hands it to the plugin as
``PLUGIN_UNIX_SOCKET_DIR``; the plugin's ``serverListener_unix`` creates its socket there (``os.CreateTemp(dir,
"plugin")``, hashicorp/go-plugin client.go and server.go). Our own plugins create one more directory level below it
(:mod:`plugin_host.goplugin.serve`). A handshake line is only a claim, though: a plugin naming the host's admin
socket, or another plugin's, would have the host dial it, send it Shutdown and unlink it. So the announced path is
accepted only when it is a socket inside that directory, owned by the plugin's user and made after the directory
was (so after the spawn); anything else is refused before it is dialled, and never removed.

go-plugin before 1.5 ignores ``PLUGIN_UNIX_SOCKET_DIR`` (``ioutil.TempFile("", "plugin")`` in server.go's
``serverListener_unix``: ``$TMPDIR/plugin<digits>``), and Nomad's external plugins still pin 1.4: a socket named
``plugin*`` directly in the plugin's temporary directory passes the same owner and age checks. The host leaves such
a socket to the plugin (its server removes it on exit).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NotItsSocket", "SocketDir", "check_announced_socket", "same_socket", "socket_dir_of"]

# Recognises our per-launch directories (also those of a reattached plugin, whose directory an earlier host made).
_PREFIX = "plugin-host-"


@dataclass(frozen=True)
class SocketDir:
    """A per-launch socket directory (mode 0700) and the file-system time it was made at."""

    path: Path
    made_ns: int

    @classmethod
    def make(cls, base: str | None) -> SocketDir:
        """A fresh directory under ``base`` (the system temporary directory when None)."""
        path = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
        st = path.stat()
        # The file system's own clock (coarser than time.time_ns) stamps the socket too, so compare like with like.
        return cls(path, min(st.st_mtime_ns, st.st_ctime_ns))

    def remove(self) -> None:
        """Remove the directory and whatever the plugin left in it (rmtree does not follow its symlinks)."""
        shutil.rmtree(self.path, ignore_errors=True)


def socket_dir_of(socket_path: str, base: str | None) -> SocketDir | None:
    """The per-launch directory holding a recorded plugin's socket, or None when it is in none of ours."""
    root = Path(os.path.realpath(base if base is not None else tempfile.gettempdir()))
    where = Path(os.path.realpath(os.path.dirname(socket_path)))
    for candidate in (where, *where.parents):
        if candidate.parent == root:
            if candidate.name.startswith(_PREFIX) and candidate.is_dir() and not candidate.is_symlink():
                return SocketDir(candidate, 0)
            return None
    return None


def _plugin_uids(pid: int) -> set[int]:
    """The effective and file-system uids of ``pid`` (a setuid plugin creates files as those), or ours."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    _real, effective, _saved, fs = line.split()[1:5]
                    return {int(effective), int(fs)}
    except (OSError, ValueError):
        pass
    return {os.geteuid()}


class NotItsSocket(ValueError):
    """The announced path is not a socket the plugin made; the message is a phrase for an error ("which ...")."""


def check_announced_socket(
    address: str, directory: SocketDir, pid: int, temp_dir: str | None = None
) -> tuple[int, int]:
    """The (device, inode) of the socket a plugin announced; :class:`NotItsSocket` when it is not its own.

    ``temp_dir`` is the plugin's temporary directory (its ``TMPDIR``, else ``/tmp``), where go-plugin before 1.5
    makes its socket. Only ``lstat`` is used: a symbolic link is refused, never followed, and nothing is opened or
    dialled.
    """
    if not os.path.isabs(address):
        raise NotItsSocket("which is not an absolute path")
    root = Path(os.path.realpath(directory.path))
    parent = Path(os.path.realpath(os.path.dirname(address)))
    legacy = (
        temp_dir is not None
        and parent == Path(os.path.realpath(temp_dir))
        and os.path.basename(address).startswith("plugin")
        and not os.path.basename(address).startswith(_PREFIX)
    )
    if parent != root and root not in parent.parents and not legacy:
        raise NotItsSocket(f"which is outside the socket directory the host gave it ({str(directory.path)!r})")
    try:
        st = os.lstat(parent / os.path.basename(address))
    except FileNotFoundError:
        raise NotItsSocket("which does not exist") from None
    except OSError as exc:
        raise NotItsSocket(f"which cannot be examined ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise NotItsSocket("which is a symbolic link, not a socket")
    if not stat.S_ISSOCK(st.st_mode):
        raise NotItsSocket("which is not a socket")
    uids = _plugin_uids(pid)
    if st.st_uid not in uids:
        raise NotItsSocket(f"which is owned by uid {st.st_uid}, not by the plugin's user (uid {min(uids)})")
    # A hard link or a rename into the directory keeps the socket's old mtime (and a link bumps only its ctime).
    if min(st.st_mtime_ns, st.st_ctime_ns) < directory.made_ns:
        raise NotItsSocket("which was made before the plugin was started")
    return st.st_dev, st.st_ino


def same_socket(path: str, identity: tuple[int, int]) -> bool:
    """Whether ``path`` is still the socket (device, inode) that was checked, not something swapped in since."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity
