"""Serve a :class:`DriverPlugin` over gRPC, wire-compatible with Nomad (``plugins/base/server.go``,
``plugins/drivers/server.go``).

Errors from the plugin become the call's gRPC status, with codes a client can tell apart (Nomad's Go drivers send
``UNKNOWN`` for everything; its client only looks at the message, which is kept):

- a recoverable :class:`DriverError` (any subclass) → ``FAILED_PRECONDITION`` with a
  ``RecoverableError{recoverable: true}`` status detail, exactly as Nomad's server sends recoverable errors (its
  client reads only the detail);
- :class:`TaskNotFoundError` → ``NOT_FOUND``; its message always contains Nomad's ``task not found for given id``;
- :class:`TaskConfigError` → ``INVALID_ARGUMENT``; :class:`TaskExistsError` → ``ALREADY_EXISTS``;
- anything else → ``UNKNOWN`` with the exception's message.

``ExecTaskStreaming``, ``CreateNetwork`` and ``DestroyNetwork`` are not served (``UNIMPLEMENTED``): the Protocol has
no such calls. ``Init`` and ``Shutdown`` call the plugin's optional ``init()`` / ``shutdown()`` when it has them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._grpc_server import Servable, UnixSocketServer, aclose_responses, recv_request
from plugin_host._proto.hashicorp.nomad.plugins.drivers import proto as wire
from plugin_host._proto.hashicorp.nomad.plugins.shared import structs as wire_structs
from plugin_host._text import truncated
from plugin_host.base import convert as base_convert
from plugin_host.base.service import BasePluginService
from plugin_host.driver import _convert as convert
from plugin_host.driver.api import DriverPlugin
from plugin_host.errors import DriverError, PluginHostError, TaskConfigError, TaskExistsError, TaskNotFoundError

__all__ = ["TASK_NOT_FOUND_MESSAGE", "DriverPluginServer", "driver_plugin_handlers"]

logger = logging.getLogger(__name__)

# Nomad's drivers.ErrTaskNotFound text: its agent recognises a missing task by this message.
TASK_NOT_FOUND_MESSAGE = "task not found for given id"

_KIND = "driver plugin"
_UNARY = Cardinality.UNARY_UNARY
_STREAM = Cardinality.UNARY_STREAM


def _status_of(exc: Exception) -> Status:
    if isinstance(exc, DriverError) and exc.recoverable:
        return Status.FAILED_PRECONDITION  # before the subclasses: Nomad sends every recoverable error so
    if isinstance(exc, TaskNotFoundError):
        return Status.NOT_FOUND
    if isinstance(exc, TaskConfigError):
        return Status.INVALID_ARGUMENT
    if isinstance(exc, TaskExistsError):
        return Status.ALREADY_EXISTS
    return Status.UNKNOWN


@contextmanager
def _driver_errors(rpc: str, task_id: str | None = None) -> Iterator[None]:
    """An exception from the plugin → the gRPC status described in the module docstring."""
    try:
        yield
    except GRPCError:
        raise
    except Exception as exc:
        if not isinstance(exc, PluginHostError):
            logger.warning("%s raised during %s", _KIND, rpc, exc_info=True)
        status = _status_of(exc)
        text = str(exc) or type(exc).__name__
        if status is Status.NOT_FOUND and TASK_NOT_FOUND_MESSAGE not in text:
            text = f"{TASK_NOT_FOUND_MESSAGE}: {truncated(task_id)} ({text})"
        details = None
        if status is Status.FAILED_PRECONDITION:
            # How Nomad's agent learns it may retry: the RecoverableError detail, as its Go server attaches it.
            details = [wire_structs.RecoverableError(recoverable=True)]
        raise GRPCError(status, text, details) from exc


async def _serve_stream(
    rpc: str, stream: Stream[Any, Any], responses: AsyncIterator[Any], to_wire: Callable[[Any], Any]
) -> None:
    """Send every item of the plugin's iterator; an exception ends the call with its status."""
    try:
        while True:
            with _driver_errors(rpc):
                try:
                    item = await anext(responses)
                except StopAsyncIteration:
                    return
                message = to_wire(item)
            await stream.send_message(message)
    finally:
        await aclose_responses(responses, rpc)


class _DriverService:
    """``hashicorp.nomad.plugins.drivers.proto.Driver`` backed by a :class:`DriverPlugin`."""

    def __init__(self, plugin: DriverPlugin) -> None:
        self._plugin = plugin

    def __mapping__(self) -> dict[str, Handler]:
        s = convert.DRIVER_SERVICE
        return {
            f"{s}/Init": Handler(self._init, _UNARY, wire.InitRequest, wire.InitResponse),
            f"{s}/TaskConfigSchema": Handler(
                self._task_config_schema, _UNARY, wire.TaskConfigSchemaRequest, wire.TaskConfigSchemaResponse
            ),
            f"{s}/Capabilities": Handler(
                self._capabilities, _UNARY, wire.CapabilitiesRequest, wire.CapabilitiesResponse
            ),
            f"{s}/Fingerprint": Handler(self._fingerprint, _STREAM, wire.FingerprintRequest, wire.FingerprintResponse),
            f"{s}/RecoverTask": Handler(self._recover, _UNARY, wire.RecoverTaskRequest, wire.RecoverTaskResponse),
            f"{s}/StartTask": Handler(self._start, _UNARY, wire.StartTaskRequest, wire.StartTaskResponse),
            f"{s}/WaitTask": Handler(self._wait, _UNARY, wire.WaitTaskRequest, wire.WaitTaskResponse),
            f"{s}/StopTask": Handler(self._stop, _UNARY, wire.StopTaskRequest, wire.StopTaskResponse),
            f"{s}/DestroyTask": Handler(self._destroy, _UNARY, wire.DestroyTaskRequest, wire.DestroyTaskResponse),
            f"{s}/InspectTask": Handler(self._inspect, _UNARY, wire.InspectTaskRequest, wire.InspectTaskResponse),
            f"{s}/TaskStats": Handler(self._stats, _STREAM, wire.TaskStatsRequest, wire.TaskStatsResponse),
            f"{s}/TaskEvents": Handler(self._events, _STREAM, wire.TaskEventsRequest, wire.DriverTaskEvent),
            f"{s}/Shutdown": Handler(self._shutdown, _UNARY, wire.ShutdownRequest, wire.ShutdownResponse),
            f"{s}/SignalTask": Handler(self._signal, _UNARY, wire.SignalTaskRequest, wire.SignalTaskResponse),
            f"{s}/ExecTask": Handler(self._exec, _UNARY, wire.ExecTaskRequest, wire.ExecTaskResponse),
        }

    async def _optional(self, stream: Stream[Any, Any], rpc: str, method: str, reply: Any) -> None:
        await stream.recv_message()
        call = getattr(self._plugin, method, None)
        if call is not None:
            with _driver_errors(rpc):
                await call()
        await stream.send_message(reply)

    async def _init(self, stream: Stream[Any, Any]) -> None:
        await self._optional(stream, "Init", "init", wire.InitResponse())

    async def _shutdown(self, stream: Stream[Any, Any]) -> None:
        await self._optional(stream, "Shutdown", "shutdown", wire.ShutdownResponse())

    async def _task_config_schema(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _driver_errors("TaskConfigSchema"):
            spec = base_convert.spec_to_wire(await self._plugin.task_config_schema())
        await stream.send_message(wire.TaskConfigSchemaResponse(spec=spec))

    async def _capabilities(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _driver_errors("Capabilities"):
            caps = convert.capabilities_to_wire(await self._plugin.capabilities())
        await stream.send_message(wire.CapabilitiesResponse(capabilities=caps))

    async def _fingerprint(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _driver_errors("Fingerprint"):
            responses = self._plugin.fingerprint()
        await _serve_stream("Fingerprint", stream, responses, convert.fingerprint_to_wire)

    async def _recover(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "RecoverTask")
        with _driver_errors("RecoverTask", request.task_id):
            handle = convert.task_handle_from_wire(request.handle, "RecoverTaskRequest.handle")
            await self._plugin.recover_task(handle)
        await stream.send_message(wire.RecoverTaskResponse())

    async def _start(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "StartTask")
        with _driver_errors("StartTask", request.task.id):
            config = convert.task_config_from_wire(request.task)
            handle, network = await self._plugin.start_task(config)
            reply = convert.start_response_to_wire(handle, network)
        await stream.send_message(reply)

    async def _wait(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "WaitTask")
        with _driver_errors("WaitTask", request.task_id):
            result = await self._plugin.wait_task(request.task_id)
        await stream.send_message(convert.wait_response_to_wire(result))

    async def _stop(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "StopTask")
        with _driver_errors("StopTask", request.task_id):
            await self._plugin.stop_task(request.task_id, convert.seconds_from_wire(request.timeout), request.signal)
        await stream.send_message(wire.StopTaskResponse())

    async def _destroy(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "DestroyTask")
        with _driver_errors("DestroyTask", request.task_id):
            await self._plugin.destroy_task(request.task_id, request.force)
        await stream.send_message(wire.DestroyTaskResponse())

    async def _inspect(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "InspectTask")
        with _driver_errors("InspectTask", request.task_id):
            reply = convert.inspect_response_to_wire(await self._plugin.inspect_task(request.task_id))
        await stream.send_message(reply)

    async def _stats(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "TaskStats")
        task_id = request.task_id
        interval = convert.seconds_from_wire(request.collection_interval) or 1.0
        with _driver_errors("TaskStats", task_id):
            responses = self._plugin.task_stats(task_id, interval)
        await _serve_stream("TaskStats", stream, responses, lambda usage: convert.task_stats_to_wire(task_id, usage))

    async def _events(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _driver_errors("TaskEvents"):
            responses = self._plugin.task_events()
        await _serve_stream("TaskEvents", stream, responses, convert.task_event_to_wire)

    async def _signal(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "SignalTask")
        with _driver_errors("SignalTask", request.task_id):
            await self._plugin.signal_task(request.task_id, request.signal)
        await stream.send_message(wire.SignalTaskResponse())

    async def _exec(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "ExecTask")
        with _driver_errors("ExecTask", request.task_id):
            result = await self._plugin.exec_task(
                request.task_id, list(request.command), convert.seconds_from_wire(request.timeout)
            )
            reply = convert.exec_response_to_wire(result)
        await stream.send_message(reply)


def driver_plugin_handlers(plugin: DriverPlugin) -> list[Servable]:
    """The grpclib services (BasePlugin and Driver) for ``plugin``, to compose on one grpclib ``Server``."""
    return [BasePluginService(plugin, kind=_KIND), _DriverService(plugin)]


class DriverPluginServer(UnixSocketServer):
    """Serve ``plugin`` on a Unix socket (mode 0600) for the lifetime of an ``async with`` block.

    Entering claims the path (a stale socket is replaced; a live one or a non-socket raises
    :class:`~plugin_host.errors.SocketInUseError`); leaving stops the server, cancels calls in flight (closing the
    plugin's stream iterators), closes the clients' connections and removes the socket file.
    """

    def __init__(
        self, plugin: DriverPlugin, socket_path: str | os.PathLike[str], *, extra_handlers: Sequence[Servable] = ()
    ) -> None:
        super().__init__(
            Path(socket_path), [*driver_plugin_handlers(plugin), *extra_handlers], what="driver plugin socket"
        )
