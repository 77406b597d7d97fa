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
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import msgpack
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import ExceptionMapping, grpc_errors, map_exceptions, status_text, unary_call
from plugin_host._proto.hashicorp.nomad.plugins import device as wire_device
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host.base import _convert as base_convert
from plugin_host.base.api import PluginInfoResponse
from plugin_host.base.hclspec import Spec
from plugin_host.device import _convert as convert
from plugin_host.device.api import ContainerReservation, FingerprintResponse, StatsResponse
from plugin_host.errors import (
    ConfigError,
    DeviceError,
    PluginHostError,
)

__all__ = ["DEVICE_API_VERSION", "DevicePluginClient"]

# The only device plugin API version Nomad defines (plugins/device/versions.go).
DEVICE_API_VERSION = "v0.1.0"

_T = TypeVar("_T")


class DevicePluginClient:
    """A remote device plugin reached over ``socket_path``; use as ``async with DevicePluginClient(path) as p:``.

    ``timeout`` (seconds, ``None`` for none) bounds each unary call; the fingerprint and stats streams are
    long-lived and have no deadline. ``api_version`` is sent with ``set_config`` as the negotiated version.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout: float | None = 30.0,
        api_version: str = DEVICE_API_VERSION,
    ) -> None:
        self._path = Path(socket_path)
        self._timeout = timeout
        self._api_version = api_version
        self._channel: Channel | None = None

    @property
    def socket_path(self) -> Path:
        """The plugin's socket."""
        return self._path

    async def __aenter__(self) -> Self:
        if self._channel is not None:
            raise RuntimeError(f"DevicePluginClient for {str(self._path)!r} is already open")
        # grpclib connects lazily, on the first call.
        self._channel = Channel(path=os.fspath(self._path))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    # --- error translation ----------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"device plugin at {str(self._path)!r}"

    def _errors(self, rpc: str) -> ExceptionMapping:
        return grpc_errors(rpc, self._where, self._timeout)

    def _require_channel(self) -> Channel:
        if self._channel is None:
            raise RuntimeError(f"DevicePluginClient for {str(self._path)!r} is not open; use it with 'async with'")
        return self._channel

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

    async def plugin_info(self) -> PluginInfoResponse:
        """The plugin's identity (``BasePlugin/PluginInfo``)."""
        reply = await self._unary(
            "PluginInfo",
            f"{base_convert.BASE_SERVICE}/PluginInfo",
            wire_base.PluginInfoRequest(),
            wire_base.PluginInfoResponse,
        )
        return base_convert.plugin_info_from_wire(reply)

    async def config_schema(self) -> Spec:
        """The hclspec of the plugin's config block (``BasePlugin/ConfigSchema``)."""
        reply = await self._unary(
            "ConfigSchema",
            f"{base_convert.BASE_SERVICE}/ConfigSchema",
            wire_base.ConfigSchemaRequest(),
            wire_base.ConfigSchemaResponse,
        )
        return base_convert.config_schema_from_wire(reply)

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        """Send a configuration (``BasePlugin/SetConfig``): a mapping is msgpack-encoded, bytes are sent as is."""
        if isinstance(config, bytes | bytearray | memoryview):
            payload = bytes(config)
        elif isinstance(config, Mapping):
            payload = msgpack.packb(dict(config), use_bin_type=True)
        else:
            raise ConfigError(
                f"config for device plugin at {str(self._path)!r} is a {type(config).__name__}, "
                "expected a mapping or msgpack-encoded bytes"
            )
        request = wire_base.SetConfigRequest(msgpack_config=payload, plugin_api_version=self._api_version)
        await self._unary("SetConfig", f"{base_convert.BASE_SERVICE}/SetConfig", request, wire_base.SetConfigResponse)

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
