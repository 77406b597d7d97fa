"""Operating-system primitives for processes that outlive their parent: spawn, identify, watch, signal and reap
(Linux). Used by the loader (plugin processes) and by raw-exec (task executors); imports nothing of plugin_host.

Processes are spawned with ``os.posix_spawn`` and watched through a pidfd rather than through ``asyncio``'s
subprocess transports: a transport kills its child when it is collected, and a plugin (or a task) must be able to
outlive the host that started it (reattach), and be watched by a host that did not start it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio

__all__ = [
    "LineReader",
    "Spawned",
    "exit_code",
    "group_members",
    "open_pidfd",
    "peek_exit_code",
    "pidfd_exited",
    "process_start_time",
    "signal_group",
    "signal_process",
    "spawn",
    "stat_fields",
    "wait_exit",
    "wait_group_gone",
    "wait_pidfd",
]


@dataclass
class Spawned:
    """A started process and the read ends of its stdout and stderr pipes (non-blocking)."""

    pid: int
    stdout: int
    stderr: int


def spawn(executable: str, args: Sequence[str], env: Mapping[str, str]) -> Spawned:
    """Start ``executable`` in its own session (a Ctrl-C aimed at the host does not reach it), stdin /dev/null."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            executable,
            [executable, *args],
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return Spawned(pid=pid, stdout=out_r, stderr=err_r)


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (state) on, or None when there is no such process.

    A zombie still has them. Index ``i`` here is field ``i + 3`` of proc(5): 0 state, 2 process group, 3 session,
    11 utime, 12 stime, 19 start time, 21 RSS pages.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; the fields after its last ')' are fixed.
    return stat[stat.rindex(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot), or None when no live process.

    A zombie counts as gone. Together with the pid, the start time identifies a process: a reused pid has another.
    """
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def signal_process(pid: int, signum: signal.Signals) -> bool:
    """Send ``signum``; False when the process is already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def exit_code(pid: int) -> int | None:
    """Reap ``pid`` if it is an exited child of ours; its exit code (negative: killed by that signal), else None."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if reaped == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def peek_exit_code(pid: int) -> int | None:
    """The exit code of ``pid`` if it is an exited child of ours, leaving it unreaped (a zombie); else None.

    While the zombie stays, its pid (and so its process group id) cannot be given to another process: the group can
    still be signalled safely, for grandchildren the plugin left behind.
    """
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if result is None:
        return None
    return result.si_status if result.si_code == os.CLD_EXITED else -result.si_status


def group_members(pgid: int, session: int | None = None) -> list[int]:
    """The live (not zombie) processes of process group ``pgid`` in ``session`` (default ``pgid``: a plugin leads both).

    Both ids are held by the members: while any is listed, neither number can belong to another group or session.
    """
    sid = pgid if session is None else session
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is None:
            continue
        if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the process group ``pid`` leads, or the process alone when it leads none (or it is not ours)."""
    # A plugin leads its own session, so its group also holds any children it started (a wrapper script's).
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        signal_process(pid, signum)


async def wait_group_gone(pgid: int, session: int | None = None) -> None:
    """Wait until process group ``pgid`` (in ``session``, default ``pgid``) has no live member (they are not our
    children: watch each by pidfd)."""
    while members := group_members(pgid, session):
        pidfd = open_pidfd(members[0])
        if pidfd is None:
            continue
        try:
            await wait_pidfd(pidfd)
        finally:
            os.close(pidfd)


def open_pidfd(pid: int, start_time: int | None = None) -> int | None:
    """A pidfd for ``pid`` (child or not), or None when it is gone or (``start_time`` given) is another process.

    The start time is checked after the pidfd is open, so the pidfd surely refers to the process that was checked.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if start_time is not None and process_start_time(pid) != start_time:
        os.close(pidfd)
        return None
    return pidfd


def pidfd_exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has exited (a pidfd turns readable then), without waiting."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)


async def wait_pidfd(pidfd: int) -> None:
    """Wait until the process of ``pidfd`` exits.

    Waits on a duplicate of the fd, so several tasks may wait for the same process at once (the event loop allows
    one reader per fd number) and the caller's fd is never closed under another waiter.
    """
    fd = os.dup(pidfd)
    try:
        await anyio.wait_readable(fd)
    finally:
        with contextlib.suppress(OSError):
            anyio.notify_closing(fd)
        os.close(fd)


async def wait_exit(pid: int) -> int | None:
    """Wait until ``pid`` exits (child or not) and return its exit code when it was our child (reaped here)."""
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return exit_code(pid)
    try:
        await wait_pidfd(pidfd)
    finally:
        os.close(pidfd)
    # Readable means the process has exited: a child of ours is a zombie now and reaps at once.
    return exit_code(pid)


# A plugin that writes without ever ending its line must not grow the host's memory: longer lines come in pieces.
MAX_LINE = 64 * 1024


class LineReader:
    """Lines (of at most :data:`MAX_LINE` bytes) from a non-blocking pipe fd; ``None`` at EOF. Owns the fd."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._buffer = bytearray()
        self._eof = False

    async def readline(self) -> bytes | None:
        """The next line without its newline, or None at EOF (a last unterminated line is returned first)."""
        while (line := self._complete_line()) is None:
            if self._eof or self._fd is None:
                return self._last_line()
            await anyio.wait_readable(self._fd)
            self._read_chunk()
        return line

    def readline_nowait(self) -> bytes | None:
        """A line already written (or the last one once the writers are gone), without waiting; else None."""
        while (line := self._complete_line()) is None:
            if self._eof or self._fd is None:
                return self._last_line()
            if not self.pending():
                return None
            self._read_chunk()
        return line

    def _read_chunk(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            chunk = b""
        if not chunk:
            self._eof = True
        self._buffer += chunk

    def _last_line(self) -> bytes | None:
        if not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        return line

    def _complete_line(self) -> bytes | None:
        index = self._buffer.find(b"\n", 0, MAX_LINE + 1)
        if index >= 0:
            line = bytes(self._buffer[:index])
            del self._buffer[: index + 1]
            return line
        if len(self._buffer) >= MAX_LINE:
            line = bytes(self._buffer[:MAX_LINE])
            del self._buffer[:MAX_LINE]
            return line
        return None

    def pending(self) -> bool:
        """Whether the pipe has data (or end of file) waiting to be read."""
        if self._fd is None:
            return False
        readable, _, _ = select.select([self._fd], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        """Close the fd (waiters must be cancelled first)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
