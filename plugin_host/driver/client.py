"""Talk to a task driver served over gRPC on a Unix socket, as Nomad's agent does (``plugins/base/client.go``,
``plugins/drivers/client.go``).

:class:`DriverPluginClient` implements the :class:`DriverPlugin` Protocol, so a remote driver is used exactly like
an in-process one. Errors are translated at this edge (see :mod:`plugin_host._grpc_client` for the transport ones):

- a status whose first detail is Nomad's ``RecoverableError{recoverable: true}`` → :class:`DriverError` with
  ``recoverable=True``, whatever the code (Nomad's client reads the detail first; Go drivers send it with
  ``FAILED_PRECONDITION``); ``FAILED_PRECONDITION`` without that detail is not recoverable, as in Nomad;
- ``NOT_FOUND``, or any status whose message contains Nomad's ``task not found for given id`` →
  :class:`TaskNotFoundError`;
- ``INVALID_ARGUMENT`` → :class:`TaskConfigError`; ``ALREADY_EXISTS`` → :class:`TaskExistsError`; any other
  status → :class:`DriverError` (not recoverable).

In the fingerprint and task-event streams an error status is not raised: as Nomad's client does, the iterator
yields one last message with ``error``/``err`` set, then stops. The stats stream raises the translated error.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import grpc_errors, map_exceptions, status_text, unary_call
from plugin_host._grpc_status import StatusDetailsCodec
from plugin_host._proto.hashicorp.nomad.plugins.drivers import proto as wire
from plugin_host._proto.hashicorp.nomad.plugins.shared import structs as wire_structs
from plugin_host._text import truncated
from plugin_host.base import convert as base_convert
from plugin_host.base.client import BasePluginClient
from plugin_host.base.hclspec import Spec
from plugin_host.driver import _convert as convert
from plugin_host.driver.api import (
    DRIVER_API_VERSION,
    Capabilities,
    DriverFingerprint,
    DriverNetwork,
    ExecTaskResult,
    ExitResult,
    TaskConfig,
    TaskEvent,
    TaskHandle,
    TaskResourceUsage,
    TaskStatus,
)
from plugin_host.driver.server import TASK_NOT_FOUND_MESSAGE
from plugin_host.errors import (
    ConfigError,
    DriverError,
    PluginHostError,
    PluginProtocolError,
    TaskConfigError,
    TaskExistsError,
    TaskNotFoundError,
)

__all__ = ["DriverPluginClient"]

_T = TypeVar("_T")
_S = convert.DRIVER_SERVICE


class DriverPluginClient(BasePluginClient):
    """A remote task driver reached over ``socket_path``; use as ``async with DriverPluginClient(path) as d:``.

    ``timeout`` (seconds, ``None`` for none) bounds each unary call except ``wait_task``, which waits as long as
    the task runs; the streams have no deadline. ``api_version`` is sent with ``set_config``.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float | None = 30.0,
        api_version: str = DRIVER_API_VERSION,
    ) -> None:
        super().__init__(socket_path, timeout=timeout, api_version=api_version)

    _kind = "driver plugin"

    def _open_channel(self) -> Channel:
        # The codec reads the RecoverableError status detail.
        return Channel(path=os.fspath(self._path), status_details_codec=StatusDetailsCodec())

    def _config_refused(self) -> Callable[[GRPCError], PluginHostError]:
        def refused(exc: GRPCError) -> PluginHostError:
            return ConfigError(f"{self._where} refused its config: {status_text(exc)}")

        return refused

    # --- plumbing -------------------------------------------------------------------------------------------------

    def _status_error(self, rpc: str, task_id: str | None = None) -> Callable[[GRPCError], PluginHostError]:
        def translate(exc: GRPCError) -> PluginHostError:
            text = status_text(exc)
            what = f"{rpc} on {self._where}" + (f" for task {truncated(task_id)}" if task_id is not None else "")
            recoverable = _recoverable(exc)
            if recoverable:
                # Nomad's client looks at the detail before anything else: a recoverable error is retried.
                return DriverError(f"{what} failed ({exc.status.name}): {text}", recoverable=True)
            if exc.status is Status.NOT_FOUND or TASK_NOT_FOUND_MESSAGE in text:
                return TaskNotFoundError(f"{what}: {text}")
            if exc.status is Status.INVALID_ARGUMENT:
                return TaskConfigError(f"{what}: invalid task config: {text}")
            if exc.status is Status.ALREADY_EXISTS:
                return TaskExistsError(f"{what}: {text}")
            return DriverError(f"{what} failed ({exc.status.name}): {text}")

        return translate

    async def _unary(
        self, rpc: str, request: Any, reply_type: type[Any], *, task_id: str | None = None, wait: bool = False
    ) -> Any:
        return await unary_call(
            self._require_channel(),
            rpc,
            f"{_S}/{rpc}",
            request,
            reply_type,
            where=self._where,
            timeout=None if wait else self._timeout,
            status_error=self._status_error(rpc, task_id),
        )

    async def _server_stream(
        self,
        rpc: str,
        request: Any,
        reply_type: type[Any],
        from_wire: Callable[[Any], _T],
        error_item: Callable[[str], _T] | None,
        task_id: str | None = None,
    ) -> AsyncGenerator[_T, None]:
        channel = self._require_channel()
        error: str | None = None
        with map_exceptions(grpc_errors(rpc, self._where, None, self._status_error(rpc, task_id))):
            try:
                with native_cancels_undone():
                    async with channel.request(f"{_S}/{rpc}", Cardinality.UNARY_STREAM, type(request), reply_type) as s:
                        await s.send_message(request, end=True)
                        async for message in s:
                            yield from_wire(message)
            except GRPCError as exc:
                if error_item is None or exc.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED):
                    raise
                error = status_text(exc)
        if error is not None and error_item is not None:
            yield error_item(error)

    # --- driver ---------------------------------------------------------------------------------------------------

    async def init(self) -> None:
        """``Driver/Init``, after ``set_config``; a plugin that does not implement it is fine, as in Nomad."""
        try:
            await self._unary("Init", wire.InitRequest(), wire.InitResponse)
        except DriverError as exc:
            if "UNIMPLEMENTED" not in str(exc):
                raise

    async def shutdown(self) -> None:
        """``Driver/Shutdown``: the plugin is about to go away (best effort; unimplemented is fine)."""
        try:
            await self._unary("Shutdown", wire.ShutdownRequest(), wire.ShutdownResponse)
        except DriverError as exc:
            if "UNIMPLEMENTED" not in str(exc):
                raise

    async def task_config_schema(self) -> Spec:
        """The hclspec of a task's driver config block."""
        reply = await self._unary("TaskConfigSchema", wire.TaskConfigSchemaRequest(), wire.TaskConfigSchemaResponse)
        return base_convert.config_schema_from_wire(reply)

    async def capabilities(self) -> Capabilities:
        """What the driver supports."""
        return convert.capabilities_from_wire(
            await self._unary("Capabilities", wire.CapabilitiesRequest(), wire.CapabilitiesResponse)
        )

    def fingerprint(self) -> AsyncGenerator[DriverFingerprint, None]:
        """Stream health and attributes; an error arrives as a last message with ``error`` set."""
        return self._server_stream(
            "Fingerprint",
            wire.FingerprintRequest(),
            wire.FingerprintResponse,
            convert.fingerprint_from_wire,
            lambda error: DriverFingerprint(error=error),
        )

    async def start_task(self, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        """Start a task; its handle and the driver's network override."""
        request = wire.StartTaskRequest(task=convert.task_config_to_wire(config))
        reply = await self._unary("StartTask", request, wire.StartTaskResponse, task_id=config.id)
        if reply.result != wire.StartTaskResponseResult.SUCCESS:
            # Drivers from before errors travelled as statuses report failures in the reply.
            recoverable = reply.result == wire.StartTaskResponseResult.RETRY
            raise DriverError(
                f"StartTask on {self._where} for task {truncated(config.id)} failed: {reply.driver_error_msg}",
                recoverable=recoverable,
            )
        if not base_convert.on_wire(reply.handle):
            raise PluginProtocolError(
                f"StartTask on {self._where} for task {truncated(config.id)}: no handle in the reply"
            )
        return convert.start_response_from_wire(reply)

    async def wait_task(self, task_id: str) -> ExitResult:
        """Wait (without deadline) for the task to exit."""
        reply = await self._unary(
            "WaitTask", wire.WaitTaskRequest(task_id=task_id), wire.WaitTaskResponse, task_id=task_id, wait=True
        )
        return convert.wait_response_from_wire(reply)

    async def stop_task(self, task_id: str, timeout: float, signal: str = "") -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Signal, wait ``timeout`` seconds, kill. The call's own deadline is extended by ``timeout``."""
        request = wire.StopTaskRequest(task_id=task_id, timeout=convert.seconds_to_wire(timeout), signal=signal)
        reply_timeout = None if self._timeout is None else self._timeout + timeout
        await unary_call(
            self._require_channel(),
            "StopTask",
            f"{_S}/StopTask",
            request,
            wire.StopTaskResponse,
            where=self._where,
            timeout=reply_timeout,
            status_error=self._status_error("StopTask", task_id),
        )

    async def destroy_task(self, task_id: str, force: bool = False) -> None:
        """Forget the task (``force`` kills a running one)."""
        request = wire.DestroyTaskRequest(task_id=task_id, force=force)
        await self._unary("DestroyTask", request, wire.DestroyTaskResponse, task_id=task_id)

    async def inspect_task(self, task_id: str) -> TaskStatus:
        """The task's status."""
        reply = await self._unary(
            "InspectTask", wire.InspectTaskRequest(task_id=task_id), wire.InspectTaskResponse, task_id=task_id
        )
        return convert.inspect_response_from_wire(reply)

    async def recover_task(self, handle: TaskHandle) -> None:
        """Re-attach the driver to a task from its handle."""
        request = wire.RecoverTaskRequest(task_id=handle.config.id, handle=convert.task_handle_to_wire(handle))
        await self._unary("RecoverTask", request, wire.RecoverTaskResponse, task_id=handle.config.id)

    def task_stats(self, task_id: str, interval: float) -> AsyncGenerator[TaskResourceUsage, None]:
        """Stream resource usage every ``interval`` seconds; a failure raises (TaskNotFoundError, DriverError)."""
        request = wire.TaskStatsRequest(task_id=task_id, collection_interval=convert.seconds_to_wire(interval))
        return self._server_stream(
            "TaskStats", request, wire.TaskStatsResponse, convert.task_stats_from_wire, None, task_id
        )

    def task_events(self) -> AsyncGenerator[TaskEvent, None]:
        """Stream task events; an error arrives as a last event with ``err`` set."""
        return self._server_stream(
            "TaskEvents",
            wire.TaskEventsRequest(),
            wire.DriverTaskEvent,
            convert.task_event_from_wire,
            lambda error: TaskEvent(timestamp=datetime.now(UTC), err=error),
        )

    async def signal_task(self, task_id: str, signal: str) -> None:
        """Send ``signal`` to the task."""
        request = wire.SignalTaskRequest(task_id=task_id, signal=signal)
        await self._unary("SignalTask", request, wire.SignalTaskResponse, task_id=task_id)

    async def exec_task(self, task_id: str, command: Sequence[str], timeout: float) -> ExecTaskResult:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Run ``command`` in the task; the call's deadline is extended by ``timeout``."""
        request = wire.ExecTaskRequest(task_id=task_id, command=list(command), timeout=convert.seconds_to_wire(timeout))
        reply = await unary_call(
            self._require_channel(),
            "ExecTask",
            f"{_S}/ExecTask",
            request,
            wire.ExecTaskResponse,
            where=self._where,
            timeout=None if self._timeout is None else self._timeout + timeout,
            status_error=self._status_error("ExecTask", task_id),
        )
        return convert.exec_response_from_wire(reply)


def _recoverable(exc: GRPCError) -> bool:
    """Nomad's client: the first status detail, when it is a RecoverableError, says whether a retry may help."""
    details: list[Any] = list(exc.details or [])
    first = details[0] if details else None
    return isinstance(first, wire_structs.RecoverableError) and first.recoverable
