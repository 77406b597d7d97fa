"""Talk to a device plugin served over gRPC on a Unix socket, as Nomad's agent does (``plugins/base/client.go``,
``plugins/device/client.go``).

:class:`DevicePluginClient` implements the :class:`DevicePlugin` Protocol, so a remote plugin is used exactly like
an in-process one. Errors are translated at this edge:

- the socket cannot be reached, or the connection drops → :class:`PluginUnavailableError` naming the path;
- a unary call runs past ``timeout`` → :class:`PluginTimeoutError`;
- ``Reserve`` answered with an error status → :class:`DeviceError` with the plugin's message;
- any other error status → :class:`PluginRPCError` (``code`` is the status name).

In the fingerprint and stats streams an error status is not raised: like Nomad's client, the iterator yields one
last response with ``error`` set to the plugin's message, then stops.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, TypeVar

from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import ExceptionMapping, grpc_errors, map_exceptions, status_text, unary_call
from plugin_host._proto.hashicorp.nomad.plugins import device as wire_device
from plugin_host.base.client import BasePluginClient
from plugin_host.device import _convert as convert
from plugin_host.device.api import ContainerReservation, FingerprintResponse, StatsResponse
from plugin_host.errors import (
    DeviceError,
    PluginHostError,
)

__all__ = ["DEVICE_API_VERSION", "DevicePluginClient"]

# The only device plugin API version Nomad defines (plugins/device/versions.go).
DEVICE_API_VERSION = "v0.1.0"

_T = TypeVar("_T")


class DevicePluginClient(BasePluginClient):
    """A remote device plugin reached over ``socket_path``; use as ``async with DevicePluginClient(path) as p:``.

    ``timeout`` (seconds, ``None`` for none) bounds each unary call; the fingerprint and stats streams are
    long-lived and have no deadline. ``api_version`` is sent with ``set_config`` as the negotiated version.
    """

    _kind = "device plugin"

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float | None = 30.0,
        api_version: str = DEVICE_API_VERSION,
    ) -> None:
        super().__init__(socket_path, timeout=timeout, api_version=api_version)

    # --- error translation ----------------------------------------------------------------------------------------

    def _errors(self, rpc: str) -> ExceptionMapping:
        return grpc_errors(rpc, self._where, self._timeout)

    # --- calls ----------------------------------------------------------------------------------------------------

    async def _unary(
        self,
        rpc: str,
        path: str,
        request: Any,
        reply_type: type[Any],
        status_error: Callable[[GRPCError], PluginHostError] | None = None,
    ) -> Any:
        return await unary_call(
            self._require_channel(),
            rpc,
            path,
            request,
            reply_type,
            where=self._where,
            timeout=self._timeout,
            status_error=status_error,
        )

    async def _server_stream(
        self,
        rpc: str,
        path: str,
        request: Any,
        reply_type: type[Any],
        from_wire: Callable[[Any], _T],
        error_response: Callable[[str], _T],
    ) -> AsyncGenerator[_T, None]:
        channel = self._require_channel()
        error: str | None = None
        with map_exceptions(self._errors(rpc)):
            try:
                # The guard runs in the consumer's task, which is the task grpclib cancels when the plugin dies.
                with native_cancels_undone():
                    async with channel.request(path, Cardinality.UNARY_STREAM, type(request), reply_type) as stream:
                        await stream.send_message(request, end=True)
                        async for message in stream:
                            yield from_wire(message)
            except GRPCError as exc:
                # Nomad's server ends the stream with the plugin's error as status; its client hands that on as
                # one last response with Error set.
                error = status_text(exc)
        if error is not None:
            yield error_response(error)

    def fingerprint(self) -> AsyncGenerator[FingerprintResponse, None]:
        """Stream device groups; an error from the plugin arrives as a last response with ``error`` set."""
        return self._server_stream(
            "Fingerprint",
            f"{convert.DEVICE_SERVICE}/Fingerprint",
            wire_device.FingerprintRequest(),
            wire_device.FingerprintResponse,
            convert.fingerprint_response_from_wire,
            lambda error: FingerprintResponse(error=error),
        )

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        """Reserve devices; a refusal from the plugin raises :class:`DeviceError` carrying its message."""
        ids = list(device_ids)

        def refused(exc: GRPCError) -> PluginHostError:
            return DeviceError(
                f"device plugin at {str(self._path)!r} could not reserve devices {ids}: {status_text(exc)}"
            )

        reply = await self._unary(
            "Reserve",
            f"{convert.DEVICE_SERVICE}/Reserve",
            convert.reserve_request_to_wire(ids),
            wire_device.ReserveResponse,
            refused,
        )
        return convert.reserve_response_from_wire(reply)

    def stats(self, interval: float) -> AsyncGenerator[StatsResponse, None]:
        """Stream statistics every ``interval`` seconds; an error arrives as a last response with ``error`` set."""
        return self._server_stream(
            "Stats",
            f"{convert.DEVICE_SERVICE}/Stats",
            convert.stats_request_to_wire(interval),
            wire_device.StatsResponse,
            convert.stats_response_from_wire,
            lambda error: StatsResponse(error=error),
        )
