"""What every remote Nomad plugin client shares (``plugins/base/client.go``): the channel and ``BasePlugin``'s calls.

:class:`BasePluginClient` owns the gRPC channel to one plugin socket (opened on entering, closed on leaving) and
implements ``plugin_info``, ``config_schema`` and ``set_config``; the device and driver clients derive from it and
add their own service's calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import msgpack
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from plugin_host._grpc_client import unary_call
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host.base import convert as base_convert
from plugin_host.base.api import PluginInfoResponse
from plugin_host.base.hclspec import Spec
from plugin_host.errors import ConfigError, PluginHostError

__all__ = ["BasePluginClient"]


class BasePluginClient:
    """A remote plugin reached over ``socket_path``; use as ``async with Client(path) as plugin:``.

    ``timeout`` (seconds, ``None`` for none) bounds each unary call. ``api_version`` is sent with ``set_config``
    as the negotiated version. Subclasses name their kind in ``_kind`` ("device plugin"), used in every message.
    """

    _kind: ClassVar[str] = "plugin"

    def __init__(self, socket_path: str | os.PathLike[str], *, timeout: float | None, api_version: str) -> None:
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
            raise RuntimeError(f"{type(self).__name__} for {str(self._path)!r} is already open")
        # grpclib connects lazily, on the first call.
        self._channel = self._open_channel()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def _open_channel(self) -> Channel:
        """The channel to the socket; a subclass that needs channel options (a status codec) overrides this."""
        return Channel(path=os.fspath(self._path))

    @property
    def _where(self) -> str:
        return f"{self._kind} at {str(self._path)!r}"

    def _require_channel(self) -> Channel:
        if self._channel is None:
            raise RuntimeError(f"{type(self).__name__} for {str(self._path)!r} is not open; use it with 'async with'")
        return self._channel

    def _config_refused(self) -> Callable[[GRPCError], PluginHostError] | None:
        """How an error status answering ``SetConfig`` is raised; None: as any other failed call."""
        return None

    # --- base plugin ----------------------------------------------------------------------------------------------

    async def plugin_info(self) -> PluginInfoResponse:
        """The plugin's identity (``BasePlugin/PluginInfo``)."""
        reply = await unary_call(
            self._require_channel(),
            "PluginInfo",
            f"{base_convert.BASE_SERVICE}/PluginInfo",
            wire_base.PluginInfoRequest(),
            wire_base.PluginInfoResponse,
            where=self._where,
            timeout=self._timeout,
        )
        return base_convert.plugin_info_from_wire(reply)

    async def config_schema(self) -> Spec:
        """The hclspec of the plugin's config block (``BasePlugin/ConfigSchema``)."""
        reply = await unary_call(
            self._require_channel(),
            "ConfigSchema",
            f"{base_convert.BASE_SERVICE}/ConfigSchema",
            wire_base.ConfigSchemaRequest(),
            wire_base.ConfigSchemaResponse,
            where=self._where,
            timeout=self._timeout,
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
                f"config for {self._where} is a {type(config).__name__}, expected a mapping or msgpack-encoded bytes"
            )
        request = wire_base.SetConfigRequest(msgpack_config=payload, plugin_api_version=self._api_version)
        await unary_call(
            self._require_channel(),
            "SetConfig",
            f"{base_convert.BASE_SERVICE}/SetConfig",
            request,
            wire_base.SetConfigResponse,
            where=self._where,
            timeout=self._timeout,
            status_error=self._config_refused(),
        )
