"""One plugin process: started with the go-plugin handshake, or reattached by pid; stopped gracefully, then by force.

go-plugin's ``Client.Start`` and ``Client.Kill``: the process gets the magic cookie and the accepted versions in its
environment, must print its handshake line on stdout within the start timeout (an exit before it is reported at once,
even while a grandchild holds stdout open), and is asked to exit through ``GRPCController/Shutdown`` before it is
signalled (here SIGTERM, then SIGKILL, each wait bounded). The plugin leads its own session and process group; a
started plugin is reaped only after whatever it left in that group (grandchildren) was stopped too, so the group id
cannot have been given to another process in between.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Self

import anyio
from anyio.abc import TaskGroup

from plugin_host._process import (
    LineReader,
    exit_code,
    group_members,
    open_pidfd,
    peek_exit_code,
    pidfd_exited,
    process_start_time,
    signal_group,
    spawn,
    wait_group_gone,
    wait_pidfd,
)
from plugin_host._service import TaskGroupService
from plugin_host.errors import PluginHostError, PluginLaunchError
from plugin_host.goplugin.handshake import (
    APP_PROTOCOL_VERSION,
    CORE_PROTOCOL_VERSION,
    ENV_MAX_PORT,
    ENV_MIN_PORT,
    PROTOCOL_GRPC,
    handshake_env,
    parse_handshake,
)
from plugin_host.loader._launch_rpc import shutdown
from plugin_host.loader._launch_socket import (
    NotItsSocket,
    SocketDir,
    check_announced_socket,
    same_socket,
    socket_dir_of,
)
from plugin_host.loader._launch_spec import PluginSpec
from plugin_host.loader._launch_stderr import StderrForwarder, plugin_logger
from plugin_host.loader.store import PluginProcessRecord

__all__ = ["PluginProcess"]

logger = logging.getLogger(__name__)

# go-plugin's defaults for ClientConfig.MinPort/MaxPort (only used by plugins listening on TCP).
_MIN_PORT, _MAX_PORT = 10000, 25000


class PluginProcess(TaskGroupService):
    """``async with PluginProcess(spec, ...) as proc:`` starts the plugin (or reattaches to ``reattach``).

    Entering raises :class:`PluginLaunchError` naming the plugin when the process does not start or its handshake
    is wrong; the process is killed then. Leaving stops the process unless :meth:`detach` was called.
    """

    def __init__(
        self,
        spec: PluginSpec,
        *,
        start_timeout: float,
        shutdown_timeout: float,
        kill_timeout: float,
        socket_dir: str | None = None,
        reattach: PluginProcessRecord | None = None,
    ) -> None:
        self.spec = spec
        self._start_timeout = start_timeout
        self._shutdown_timeout = shutdown_timeout
        self._kill_timeout = kill_timeout
        self._socket_base = socket_dir
        self._reattach = reattach
        # The directory the plugin was told to listen in, and the (device, inode) of the socket it made there.
        self._own_dir: SocketDir | None = None
        self._socket_id: tuple[int, int] | None = None
        self._temp_dir = "/tmp"
        self.pid = 0
        self.start_time = 0
        self.socket_path = ""
        self.exit_code: int | None = None
        self._exited = anyio.Event()
        self._stderr_done = anyio.Event()
        self._stderr = StderrForwarder(spec.name)
        self._readers: list[LineReader] = []
        self._detached = False
        # Watched and waited on through a pidfd, which keeps naming this process even after its pid is reused,
        # and works for a process that is not our child (reattached).
        self._pidfd: int | None = None
        super().__init__()

    @property
    def reattached(self) -> bool:
        """Whether this process was found running instead of started."""
        return self._reattach is not None

    @property
    def exited(self) -> bool:
        """Whether the process has exited."""
        if not self._exited.is_set() and self._pidfd is not None and pidfd_exited(self._pidfd):
            self._on_exit()
        return self._exited.is_set()

    def record(self) -> PluginProcessRecord:
        """What the state file keeps to reattach to this process later (go-plugin's ``ReattachConfig``)."""
        return PluginProcessRecord(
            name=self.spec.name,
            pid=self.pid,
            start_time=self.start_time,
            socket_path=self.socket_path,
            executable=os.fspath(self.spec.executable),
        )

    def detach(self) -> None:
        """Leave the process running when the block is left (what a killed host leaves behind, to reattach to)."""
        self._detached = True

    async def wait(self) -> int | None:
        """Wait until the process exits; its exit code when we started it (None for a reattached process)."""
        await self._exited.wait()
        return self.exit_code

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            return await super().__aenter__()
        except OSError as exc:
            # The failed start already stopped the process and closed what it had opened.
            if isinstance(exc, PluginHostError):
                raise
            raise self._error(f"cannot be started: {exc}") from exc

    async def _service_start(self, tg: TaskGroup) -> None:
        if self._reattach is not None:
            self._attach(self._reattach)
        else:
            await self._start(tg)

    async def _service_abort(self) -> None:
        await self._stop()

    async def _service_stop(self) -> None:
        if not self._detached:
            await self._stop()

    async def _service_release(self) -> None:
        for reader in self._readers:
            reader.close()
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    # --- start ----------------------------------------------------------------------------------------------------

    def _error(self, what: str) -> PluginLaunchError:
        return PluginLaunchError(f"plugin {self.spec.name!r} ({self.spec.executable}) {what}", plugin=self.spec.name)

    async def _start(self, tg: TaskGroup) -> None:
        self._own_dir = SocketDir.make(self._socket_base)
        env = {
            **os.environ,
            ENV_MIN_PORT: str(_MIN_PORT),
            ENV_MAX_PORT: str(_MAX_PORT),
            **handshake_env(unix_socket_dir=os.fspath(self._own_dir.path)),
        }
        # Go's os.TempDir(): where go-plugin < 1.5 makes its socket (see _launch_socket).
        self._temp_dir = env.get("TMPDIR") or "/tmp"
        spawned = spawn(os.fspath(self.spec.executable), self.spec.args, env)
        self.pid = spawned.pid
        # Our unreaped child cannot be gone yet: this pidfd surely names it.
        self._pidfd = open_pidfd(spawned.pid)
        self.start_time = process_start_time(spawned.pid) or 0
        stdout, stderr = LineReader(spawned.stdout), LineReader(spawned.stderr)
        self._readers += [stdout, stderr]
        tg.start_soon(self._watch_exit)
        tg.start_soon(self._forward_stderr, stderr)
        with anyio.move_on_after(self._start_timeout) as scope:
            line = await self._handshake_line(stdout)
        if scope.cancelled_caught:
            raise self._error(
                f"printed no handshake within the start timeout of {self._start_timeout:g}s;"
                f" stderr: {self._stderr.tail()}"
            )
        if line is None:
            with anyio.move_on_after(2):
                await self._exited.wait()
            # A grandchild may hold stderr open forever: wait for what the plugin wrote, not for the end of the pipe.
            for _ in range(100):
                if self._stderr_done.is_set() or not stderr.pending():
                    break
                await anyio.sleep(0.01)
            code = "unknown" if self.exit_code is None else str(self.exit_code)
            raise self._error(
                f"exited with status {code} before printing a handshake (expected a line like"
                f" {CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|/path/plugin.sock|grpc on stdout);"
                f" stderr: {self._stderr.tail()}"
            )
        text = line.decode("utf-8", "replace").strip()
        try:
            handshake = parse_handshake(text)
        except PluginHostError as exc:
            raise self._error(f"sent an invalid handshake: {exc}") from exc
        if handshake.network != "unix":
            raise self._error(
                f"listens on network {handshake.network!r} ({handshake.address}); expected 'unix' (a socket path)"
            )
        if handshake.protocol != PROTOCOL_GRPC:
            raise self._error(f"speaks protocol {handshake.protocol!r}; expected {PROTOCOL_GRPC!r}")
        try:
            self._socket_id = check_announced_socket(handshake.address, self._own_dir, self.pid, self._temp_dir)
        except NotItsSocket as exc:
            # Not dialled, not sent Shutdown, not removed: it may be the admin socket or another plugin's.
            raise self._error(f"announced socket {handshake.address!r}, {exc}; refused, left untouched") from None
        self.socket_path = handshake.address
        tg.start_soon(self._drain_stdout, stdout)

    async def _handshake_line(self, stdout: LineReader) -> bytes | None:
        """The first stdout line, or None once the plugin exited without one.

        The plugin's exit ends the wait, not only the end of its stdout: a grandchild it left behind may hold that
        pipe open for as long as it lives.
        """
        line: bytes | None = None
        async with anyio.create_task_group() as tg:

            async def read() -> None:
                nonlocal line
                line = await stdout.readline()
                tg.cancel_scope.cancel()

            async def leader_exit() -> None:
                await self._exited.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(read)
            tg.start_soon(leader_exit)
        # A handshake printed just before exiting is already in the pipe.
        return line if line is not None else stdout.readline_nowait()

    def _attach(self, record: PluginProcessRecord) -> None:
        # Not our child (its host is gone), so there is no pidfd from spawn and waitpid cannot wait for it.
        self._pidfd = open_pidfd(record.pid, record.start_time)
        if self._pidfd is None:
            raise self._error(f"process {record.pid} of an earlier run is gone (or its pid was reused)")
        self.pid, self.start_time, self.socket_path = record.pid, record.start_time, record.socket_path
        # Checked when an earlier host launched it; only a socket in one of our directories will be removed.
        self._own_dir = socket_dir_of(record.socket_path, self._socket_base)
        assert self._tg is not None
        self._tg.start_soon(self._watch_exit)
        # Its stdout and stderr were pipes to the host that started it; nothing of them is left to forward.
        self._stderr_done.set()

    async def _watch_exit(self) -> None:
        # Only a real exit sets _exited: a cancelled watcher must not make _stop believe the process is gone.
        assert self._pidfd is not None
        await wait_pidfd(self._pidfd)
        self._on_exit()

    def _on_exit(self) -> None:
        if not self._exited.is_set():
            # Not reaped yet (see _stop): None for a process that is not our child (reattached).
            self.exit_code = peek_exit_code(self.pid)
            self._exited.set()

    async def _wait_exited(self, limit: float) -> None:
        assert self._pidfd is not None
        with anyio.move_on_after(limit):
            await wait_pidfd(self._pidfd)
        _ = self.exited

    async def _forward_stderr(self, reader: LineReader) -> None:
        try:
            while (line := await reader.readline()) is not None:
                self._stderr.feed(line)
        finally:
            self._stderr_done.set()

    async def _drain_stdout(self, reader: LineReader) -> None:
        out = plugin_logger(self.spec.name)
        while (line := await reader.readline()) is not None:
            out.debug("stdout: %s", line.decode("utf-8", "replace"))

    # --- stop -----------------------------------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Shutdown RPC, then SIGTERM, then SIGKILL (to the process group), each wait bounded; remove its directory."""
        if self._pidfd is not None and not self.exited:
            if self._may_dial() and await shutdown(self.socket_path, limit=self._shutdown_timeout):
                await self._wait_exited(self._shutdown_timeout)
            for signum in (signal.SIGTERM, signal.SIGKILL):
                if self.exited:
                    break
                # The pidfd says the leader still runs, so its pid is still its process group's id.
                signal_group(self.pid, signum)
                await self._wait_exited(self._kill_timeout)
            if not self.exited:
                logger.error("plugin %r (pid %d) did not exit after SIGKILL", self.spec.name, self.pid)
        if self._pidfd is not None and self.exited:
            await self._stop_leftovers()
            exit_code(self.pid)  # reap it: only now may its pid, and so its group id, be given to another process
        if self._own_dir is not None and (self._pidfd is None or self.exited):
            self._own_dir.remove()

    async def _stop_leftovers(self) -> None:
        """SIGTERM, then SIGKILL, the processes the plugin left in its process group (grandchildren)."""
        # Safe while the leader is our unreaped zombie: its group id cannot have been reused. A reattached leader was
        # reaped by another parent; its group is still its own while members hold the id, and nobody else runs as
        # that pid (a live process there means the number was given away: not ours to signal).
        if process_start_time(self.pid) is not None or not group_members(self.pid):
            return
        logger.info("plugin %r (pid %d) exited leaving processes in its group; stopping them", self.spec.name, self.pid)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            signal_group(self.pid, signum)
            with anyio.move_on_after(self._kill_timeout):
                await wait_group_gone(self.pid)
                return
        if group_members(self.pid):
            logger.error("processes of plugin %r's group %d survived SIGKILL", self.spec.name, self.pid)

    def _may_dial(self) -> bool:
        """Whether the socket is still the one the plugin made (a reattached one was checked by its first host)."""
        if not self.socket_path:
            return False
        return self._socket_id is None or same_socket(self.socket_path, self._socket_id)
