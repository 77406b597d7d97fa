"""raw-exec: the reference task driver. It runs a task's ``command`` with ``args`` as a plain host process.

No isolation at all (as Nomad's ``raw_exec``): the task runs as the host's user, in ``<alloc_dir>/<name>`` when
that exists (else ``alloc_dir``, else the host's working directory), with the host's environment plus the task's
``env``, its output appended to ``stdout_path``/``stderr_path``.

Each task runs under a small executor process (:mod:`._executor`) in its own session. The executor records the
task's exit in a status file, so a driver that did not start the task — after a host restart — still learns how it
ended: ``recover_task`` re-attaches from the handle alone. ``stop_task`` sends the signal (SIGTERM by default) to
the task, then SIGKILL after ``timeout``. Capabilities: signals yes, exec no, no filesystem isolation, host network.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from plugin_host._hub import SubscriptionHub
from plugin_host._process import stat_fields, wait_exit
from plugin_host._text import shape, truncated
from plugin_host._version import __version__, go_version
from plugin_host.base.api import PLUGIN_TYPE_DRIVER, PluginInfoResponse
from plugin_host.base.hclspec import Spec
from plugin_host.base.structs import Attribute
from plugin_host.driver.api import (
    DRIVER_API_VERSION,
    Capabilities,
    CpuStats,
    DriverFingerprint,
    DriverNetwork,
    ExecTaskResult,
    ExitResult,
    FsIsolation,
    HealthState,
    MemoryStats,
    NetIsolationMode,
    ResourceUsage,
    TaskConfig,
    TaskEvent,
    TaskHandle,
    TaskResourceUsage,
    TaskState,
    TaskStatus,
)
from plugin_host.errors import DriverError, TaskConfigError, TaskExistsError, TaskNotFoundError
from plugin_host.plugins._task_events import task_event_subscriber
from plugin_host.plugins.rawexec import _executor
from plugin_host.plugins.rawexec._task import DRIVER_STATE_VERSION, ExecutorState, RawExecTask, attach
from plugin_host.plugins.rawexec.config import CONFIG_SPEC, TASK_CONFIG_SPEC, RawExecConfig

__all__ = ["DRIVER_NAME", "RawExecDriver"]

logger = logging.getLogger(__name__)

DRIVER_NAME = "raw-exec"
_START_TIMEOUT = 30.0
_EVENT_BUFFER = 256
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class RawExecDriver:
    """The raw-exec driver; implements :class:`~plugin_host.driver.DriverPlugin`. ``RawExecDriver(config=None)``."""

    def __init__(self, config: RawExecConfig | Mapping[str, Any] | None = None) -> None:
        self._config = RawExecConfig() if config is None else RawExecConfig.coerce(config)
        self._tasks: dict[str, RawExecTask] = {}
        self._events = SubscriptionHub[TaskEvent]()

    # --- base plugin ----------------------------------------------------------------------------------------------

    async def plugin_info(self) -> PluginInfoResponse:
        """Type ``driver``, name ``raw-exec``."""
        return PluginInfoResponse(
            type=PLUGIN_TYPE_DRIVER,
            plugin_api_versions=(DRIVER_API_VERSION,),
            plugin_version=go_version(__version__),
            name=DRIVER_NAME,
        )

    async def config_schema(self) -> Spec:
        """The ``config {}`` block: ``state_dir``."""
        return CONFIG_SPEC

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        """Apply a config (model, mapping or msgpack); :class:`ConfigError` leaves the old one in place."""
        self._config = RawExecConfig.coerce(config)

    # --- driver ---------------------------------------------------------------------------------------------------

    async def task_config_schema(self) -> Spec:
        """A task's ``config {}``: ``command`` (required) and ``args``."""
        return TASK_CONFIG_SPEC

    async def capabilities(self) -> Capabilities:
        """Signals, no exec, no filesystem isolation, host network only."""
        return Capabilities(
            send_signals=True,
            exec=False,
            fs_isolation=FsIsolation.NONE,
            network_isolation_modes=(NetIsolationMode.HOST,),
        )

    async def fingerprint(self) -> AsyncIterator[DriverFingerprint]:
        """Healthy, once; the stream then stays open (nothing about the host can change the verdict)."""
        yield DriverFingerprint(
            attributes={
                "driver.raw-exec": Attribute(bool_val=True),
                "driver.raw-exec.version": Attribute(string_val=go_version(__version__)),
            },
            health=HealthState.HEALTHY,
            health_description="Healthy",
        )
        await anyio.sleep_forever()

    async def start_task(self, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        """Validate, start the executor and the task, and return the handle to recover it with."""
        command, args, workdir = self._validate(config)
        status_dir = self._config.state_path
        try:
            status_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DriverError(f"raw-exec: cannot create the state directory {str(status_dir)!r}: {exc}") from exc
        status_file = status_dir / (hashlib.sha256(config.id.encode()).hexdigest()[:32] + ".json")
        with contextlib.suppress(FileNotFoundError):
            status_file.unlink()
        state = await self._spawn(config, command, args, workdir, status_file)
        task = attach(config, state)
        self._tasks[config.id] = task
        handle = TaskHandle(
            version=DRIVER_STATE_VERSION, config=config, state=TaskState.RUNNING, driver_state=state.encode()
        )
        self._emit(config, f"task started (pid {state.pid})")
        return handle, None

    def _validate(self, config: TaskConfig) -> tuple[str, list[str], str]:
        problems: list[str] = []
        if not config.id:
            problems.append("id: must not be empty")
        elif config.id in self._tasks:
            raise TaskExistsError(f"raw-exec: a task with id {truncated(config.id)} already exists")
        command = config.driver_config.get("command")
        if not isinstance(command, str) or not command:
            problems.append(f"config.command: expected a non-empty string, got {truncated(command)}")
        args = config.driver_config.get("args", [])
        # Arguments routinely carry tokens and passwords (--password=...): their values are never echoed.
        if not isinstance(args, list | tuple):
            problems.append(f"config.args: expected a list of strings, got {shape(args)} (value not shown)")
        else:
            bad = [f"[{index}] is {shape(arg)}" for index, arg in enumerate(args) if not isinstance(arg, str)]
            if bad:
                problems.append(f"config.args: expected a list of strings; {', '.join(bad[:5])} (values not shown)")
        unknown = sorted(set(config.driver_config) - {"command", "args"})
        if unknown:
            problems.append(f"config: unknown keys {truncated(unknown)}; allowed: args, command")
        if config.user and config.user != _current_user():
            problems.append(
                f"user: {truncated(config.user)} differs from the host's user {_current_user()!r}; raw-exec cannot"
            )
        workdir = os.getcwd()
        if config.alloc_dir:
            task_dir = Path(config.alloc_dir) / config.name
            if task_dir.is_dir():
                workdir = os.fspath(task_dir)
            elif Path(config.alloc_dir).is_dir():
                workdir = config.alloc_dir
            else:
                problems.append(f"alloc_dir: {truncated(config.alloc_dir)} is not a directory")
        if problems:
            raise TaskConfigError(f"raw-exec: invalid task {truncated(config.id)}: " + "; ".join(problems))
        return str(command), [str(a) for a in args], workdir

    async def _spawn(
        self, config: TaskConfig, command: str, args: list[str], workdir: str, status_file: Path
    ) -> ExecutorState:
        ready_r, ready_w = os.pipe()
        fds: list[int] = [ready_r]
        try:
            out = _open_output(config.stdout_path, "stdout_path")
            fds.append(out)
            err = _open_output(config.stderr_path, "stderr_path")
            fds.append(err)
            argv = [sys.executable, "-S", _executor.__file__, os.fspath(status_file), workdir, "3", "--", command]
            try:
                pid = os.posix_spawn(  # noqa: ASYNC221 - returns as soon as the executor is forked
                    sys.executable,
                    [*argv, *args],
                    {**os.environ, **config.env},
                    file_actions=[
                        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                        (os.POSIX_SPAWN_DUP2, out, 1),
                        (os.POSIX_SPAWN_DUP2, err, 2),
                        (os.POSIX_SPAWN_DUP2, ready_w, 3),
                    ],
                    setsid=True,
                )
            finally:
                os.close(ready_w)
            executor_start = _wait_start_time(pid)
            os.set_blocking(ready_r, False)
            line = await _read_line(ready_r, _START_TIMEOUT)
        finally:
            for fd in fds:
                os.close(fd)
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] == "started":
            return ExecutorState(pid, executor_start, int(parts[1]), int(parts[2]), os.fspath(status_file))
        with anyio.move_on_after(5):
            await _executor_exit(pid)
        reason = line[len("error ") :] if line.startswith("error ") else f"the executor said {truncated(line)}"
        raise DriverError(f"raw-exec: cannot run command {truncated(command)} of task {truncated(config.id)}: {reason}")

    def _task(self, task_id: str) -> RawExecTask:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFoundError(f"raw-exec: task not found for given id {truncated(task_id)}") from None

    async def wait_task(self, task_id: str) -> ExitResult:
        """The task's exit; at once when it already exited."""
        task = self._task(task_id)
        was_running = task.running
        result = await task.wait()
        if was_running and task_id in self._tasks:
            self._emit(task.config, f"task exited with code {result.exit_code}")
        return result

    async def stop_task(self, task_id: str, timeout: float, signal: str = "") -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Send ``signal`` (default SIGTERM), SIGKILL after ``timeout`` seconds; no-op on an exited task."""
        task = self._task(task_id)
        await task.stop(max(timeout, 0.0), _signal_number(signal or "SIGTERM"))

    async def destroy_task(self, task_id: str, force: bool = False) -> None:
        """Forget the task and delete its status file; a running task needs ``force`` (it is killed)."""
        task = self._task(task_id)
        if task.running:
            if not force:
                raise DriverError(
                    f"raw-exec: task {truncated(task_id)} is still running; stop it first or pass force=True"
                )
            await task.stop(0.0, signal.SIGKILL)
        await task.kill_leftovers()
        self._tasks.pop(task_id, None)
        task.close()
        task.remove_status_file()

    async def inspect_task(self, task_id: str) -> TaskStatus:
        """State, start and completion times, exit result and the task's pid."""
        return self._task(task_id).status()

    async def recover_task(self, handle: TaskHandle) -> None:
        """Re-attach from the handle; a task whose executor is gone and left no exit record is not found."""
        task_id = handle.config.id
        if task_id in self._tasks:
            return
        if handle.version != DRIVER_STATE_VERSION:
            raise DriverError(
                f"raw-exec: handle of task {truncated(task_id)} has version {handle.version}; expected "
                f"{DRIVER_STATE_VERSION}"
            )
        state = ExecutorState.decode(handle.driver_state, task_id)
        task = attach(handle.config, state)
        if not task.running and not task.recorded:
            raise TaskNotFoundError(
                f"raw-exec: task not found for given id {truncated(task_id)}: executor {state.executor_pid} is gone and"
                f" {state.status_file} holds no record of it"
            )
        self._tasks[task_id] = task
        self._emit(handle.config, "task recovered" + ("" if task.running else " (already exited)"))

    async def task_stats(self, task_id: str, interval: float) -> AsyncIterator[TaskResourceUsage]:
        """The task process's memory (RSS, bytes) and CPU use every ``interval`` seconds, until it exits."""
        task = self._task(task_id)
        previous: tuple[float, float, float] | None = None
        while task.running:
            sample = _proc_sample(task.state.pid)
            if sample is None:
                return
            now = anyio.current_time()
            user, system, rss = sample
            cpu = CpuStats(measured=())
            if previous is not None and now > previous[0]:
                span = now - previous[0]
                user_pct = 100.0 * (user - previous[1]) / span
                system_pct = 100.0 * (system - previous[2]) / span
                cpu = CpuStats(
                    user_mode=user_pct,
                    system_mode=system_pct,
                    percent=user_pct + system_pct,
                    measured=("User Mode", "System Mode", "Percent"),
                )
            previous = (now, user, system)
            usage = ResourceUsage(memory_stats=MemoryStats(rss=rss, measured=("RSS",)), cpu_stats=cpu)
            yield TaskResourceUsage(resource_usage=usage, timestamp=_now_nanos(), pids={str(task.state.pid): usage})
            await anyio.sleep(interval)

    async def task_events(self) -> AsyncGenerator[TaskEvent, None]:
        """Events of every task (started, exited, recovered), from now on.

        The driver never waits for the reader: one that falls 256 events behind loses the events
        that do not fit, as with Nomad's eventer, and gets those emitted once it reads again (see
        :mod:`plugin_host.plugins._task_events`).
        """
        events = self._events.add(task_event_subscriber(DRIVER_NAME, _EVENT_BUFFER))
        try:
            async for event in events:
                yield event
        finally:
            self._events.detach(events)

    async def signal_task(self, task_id: str, signal: str) -> None:
        """Send a named signal (``"SIGHUP"`` or ``"HUP"``) to the task."""
        task = self._task(task_id)
        if not task.signal(_signal_number(signal)):
            raise DriverError(f"raw-exec: task {truncated(task_id)} is not running; cannot send {signal}")

    async def exec_task(self, task_id: str, command: Sequence[str], timeout: float) -> ExecTaskResult:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Not supported (the exec capability is off)."""
        self._task(task_id)
        raise DriverError("raw-exec does not support exec_task (capability exec is false)")

    # --- helpers --------------------------------------------------------------------------------------------------

    def _emit(self, config: TaskConfig, message: str) -> None:
        event = TaskEvent(
            task_id=config.id,
            task_name=config.name,
            alloc_id=config.alloc_id,
            timestamp=datetime.now(UTC),
            message=message,
        )
        self._events.publish(event)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _signal_number(name: str) -> int:
    text = name.upper()
    try:
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise DriverError(
            f"raw-exec: unknown signal {truncated(name)}; expected a name such as 'SIGTERM' or 'HUP'"
        ) from None


def _open_output(path: str, field: str) -> int:
    if not path:
        return os.open(os.devnull, os.O_WRONLY)
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise TaskConfigError(
            f"raw-exec: {field} {truncated(path)} cannot be opened for writing: {exc.strerror}"
        ) from exc


def _wait_start_time(pid: int) -> int:
    # Our unreaped child: even when the executor already exited, its zombie keeps its stat.
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"process {pid} is gone")
    return int(fields[19])


async def _read_line(fd: int, limit: float) -> str:
    data = b""
    with anyio.move_on_after(limit):
        while b"\n" not in data:
            await anyio.wait_readable(fd)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace").strip()


async def _executor_exit(pid: int) -> None:
    await wait_exit(pid)


def _proc_sample(pid: int) -> tuple[float, float, int] | None:
    """(user seconds, system seconds, RSS bytes) of a live process, or None when it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK, int(fields[21]) * _PAGE


def _now_nanos() -> int:
    import time

    return time.time_ns()
