"""One raw-exec task: its executor process (watched through a pidfd), the task process, and its status file.

The driver state kept in the task handle names the executor (pid and start time, so a reused pid is never
mistaken for it), the task process and the status file; that is all a fresh driver needs to re-attach.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgpack

from plugin_host._process import (
    exit_code,
    group_members,
    open_pidfd,
    pidfd_exited,
    process_start_time,
    wait_group_gone,
    wait_pidfd,
)
from plugin_host._text import truncated
from plugin_host.driver.api import ExitResult, TaskConfig, TaskState, TaskStatus
from plugin_host.errors import DriverError

__all__ = ["DRIVER_STATE_VERSION", "ExecutorState", "RawExecTask"]

DRIVER_STATE_VERSION = 1
_STATE_KEYS = ("executor_pid", "executor_start_time", "pid", "start_time", "status_file")


@dataclass(frozen=True)
class ExecutorState:
    """What the handle's ``driver_state`` holds (msgpack map)."""

    executor_pid: int
    executor_start_time: int
    pid: int
    start_time: int
    status_file: str

    def encode(self) -> bytes:
        """The msgpack bytes for ``TaskHandle.driver_state``."""
        packed: bytes = msgpack.packb({k: getattr(self, k) for k in _STATE_KEYS}, use_bin_type=True)
        return packed

    @classmethod
    def decode(cls, payload: bytes, task_id: str) -> ExecutorState:
        """Parse ``driver_state``; anything else is a :class:`DriverError` naming the task."""
        try:
            data = msgpack.unpackb(payload, raw=False)
            return cls(**{k: data[k] for k in _STATE_KEYS})
        except Exception as exc:
            raise DriverError(
                f"raw-exec: driver state of task {truncated(task_id)} ({len(payload)} bytes) is not a raw-exec "
                f"state map"
                f" with keys {', '.join(_STATE_KEYS)}: {exc}"
            ) from exc


def _moment(nanos: Any) -> datetime | None:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if isinstance(nanos, int) else None


class RawExecTask:
    """A tracked task. ``pidfd`` is None once the executor is known to be gone (or was gone on recovery)."""

    def __init__(self, config: TaskConfig, state: ExecutorState, pidfd: int | None) -> None:
        self.config = config
        self.state = state
        self._pidfd = pidfd
        self._result: ExitResult | None = None
        self._record: dict[str, Any] = {}
        self._exited = anyio.Event()
        if pidfd is None:
            self._finish()

    @property
    def running(self) -> bool:
        """Whether the executor (and so maybe the task) still runs."""
        if self._pidfd is not None and not self._exited.is_set() and pidfd_exited(self._pidfd):
            self._finish()
        return not self._exited.is_set()

    @property
    def recorded(self) -> bool:
        """Whether the executor's status file told how the task ended (or that it started)."""
        return bool(self._record)

    def _read_record(self) -> dict[str, Any]:
        try:
            data = json.loads(Path(self.state.status_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _finish(self) -> None:
        """The executor is gone: reap it when it is our child, and take the task's exit from the status file."""
        if self._pidfd is not None:
            exit_code(self.state.executor_pid)  # only a pidfd proves the pid is still our executor
        self._record = self._read_record()
        if "exit_code" in self._record:
            self._result = ExitResult(exit_code=int(self._record["exit_code"]), signal=int(self._record["signal"]))
        else:
            self._result = ExitResult(
                exit_code=-1,
                err=f"raw-exec executor of task {truncated(self.config.id)} died without recording the exit",
            )
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)
        self._exited.set()

    async def wait(self) -> ExitResult:
        """The task's exit; waits while it runs."""
        if self._pidfd is not None and not self._exited.is_set():
            pidfd = self._pidfd
            await wait_pidfd(pidfd)
            if not self._exited.is_set():
                self._finish()
        await self._exited.wait()
        assert self._result is not None
        return self._result

    def signal(self, signum: int) -> bool:
        """Signal the task process if it still is that process; False when it is gone."""
        if not self.running or process_start_time(self.state.pid) != self.state.start_time:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.state.pid, signum)
            return True
        return False

    async def stop(self, timeout: float, signum: int) -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """``signum``, then SIGKILL after ``timeout`` seconds; returns once the executor recorded the exit, with
        what the task left in its process group killed too."""
        if not self.running:
            await self.kill_leftovers()
            return
        self.signal(signum)
        with anyio.move_on_after(timeout):
            await self.wait()
        if self.running:
            self.signal(signal.SIGKILL)
            with anyio.move_on_after(10):
                await self.wait()
        if self.running:
            raise DriverError(f"raw-exec: task {truncated(self.config.id)} did not exit after SIGKILL")
        await self.kill_leftovers()

    async def kill_leftovers(self) -> None:
        """SIGKILL the processes the exited task left in its process group, as Nomad's executor kills the task's group
        once it stops it (hashicorp/nomad#3572)."""
        # Listed members hold the group id (the task's pid) and session id (the executor's): neither can be another's.
        # A task started by an older executor shares the executor's group and lists none here.
        if self.running or not group_members(self.state.pid, self.state.executor_pid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.state.pid, signal.SIGKILL)
        # SIGKILL is delivered asynchronously: return once the leftovers are really gone (bounded: a process in
        # uninterruptible sleep dies only when its I/O ends).
        with anyio.move_on_after(10):
            await wait_group_gone(self.state.pid, self.state.executor_pid)

    def status(self) -> TaskStatus:
        """What ``inspect_task`` reports."""
        running = self.running
        record = self._record or self._read_record()
        return TaskStatus(
            id=self.config.id,
            name=self.config.name,
            state=TaskState.RUNNING if running else TaskState.EXITED,
            started_at=_moment(record.get("started_at")),
            completed_at=None if running else _moment(record.get("completed_at")),
            exit_result=None if running else self._result,
            driver_attributes={"pid": str(self.state.pid)},
        )

    def close(self) -> None:
        """Stop watching (the process keeps running: a later driver may recover it)."""
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    def remove_status_file(self) -> None:
        """Delete the status file (on destroy)."""
        for path in (self.state.status_file, self.state.status_file + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def attach(config: TaskConfig, state: ExecutorState) -> RawExecTask:
    """A task from its executor state: watched when its executor is still that process, else exited."""
    return RawExecTask(config, state, open_pidfd(state.executor_pid, state.executor_start_time))
