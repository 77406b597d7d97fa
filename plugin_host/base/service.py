"""Serve Nomad's ``BasePlugin`` service (``plugins/base/server.go``) for any plugin kind: device or driver.

Errors follow Nomad's server: an exception from the plugin becomes the call's gRPC status ``UNKNOWN`` with the
exception's message (:func:`plugin_errors`, which the device server uses for its own calls too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._grpc_server import recv_request
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host.base import convert as base_convert
from plugin_host.base.api import BasePlugin
from plugin_host.errors import PluginHostError

__all__ = ["BasePluginService", "plugin_errors"]

logger = logging.getLogger(__name__)


@contextmanager
def plugin_errors(rpc: str, prefix: str = "", *, kind: str = "plugin") -> Iterator[None]:
    """Turn an exception from the plugin into the gRPC status Nomad's server would send (UNKNOWN + message).

    ``kind`` names the plugin in the warning logged for an exception that is not one of ours (a bug in it).
    """
    try:
        yield
    except GRPCError:
        raise
    except Exception as exc:
        if not isinstance(exc, PluginHostError):
            logger.warning("%s raised during %s", kind, rpc, exc_info=True)
        raise GRPCError(Status.UNKNOWN, f"{prefix}{str(exc) or type(exc).__name__}") from exc


class BasePluginService:
    """``hashicorp.nomad.plugins.base.proto.BasePlugin`` backed by a :class:`BasePlugin`.

    ``kind`` ("device plugin", "driver plugin") names the plugin in log lines.
    """

    def __init__(self, plugin: BasePlugin, *, kind: str = "plugin") -> None:
        self._plugin = plugin
        self._kind = kind

    def __mapping__(self) -> dict[str, Handler]:
        unary = Cardinality.UNARY_UNARY
        return {
            f"{base_convert.BASE_SERVICE}/PluginInfo": Handler(
                self._plugin_info, unary, wire_base.PluginInfoRequest, wire_base.PluginInfoResponse
            ),
            f"{base_convert.BASE_SERVICE}/ConfigSchema": Handler(
                self._config_schema, unary, wire_base.ConfigSchemaRequest, wire_base.ConfigSchemaResponse
            ),
            f"{base_convert.BASE_SERVICE}/SetConfig": Handler(
                self._set_config, unary, wire_base.SetConfigRequest, wire_base.SetConfigResponse
            ),
        }

    async def _plugin_info(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with plugin_errors("PluginInfo", kind=self._kind):
            reply = base_convert.plugin_info_to_wire(await self._plugin.plugin_info())
        await stream.send_message(reply)

    async def _config_schema(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with plugin_errors("ConfigSchema", kind=self._kind):
            spec = base_convert.spec_to_wire(await self._plugin.config_schema())
        await stream.send_message(wire_base.ConfigSchemaResponse(spec=spec))

    async def _set_config(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "SetConfig")
        # Our BasePlugin takes the config only; the negotiated API version is informational here.
        logger.debug("SetConfig with plugin API version %r", request.plugin_api_version)
        with plugin_errors("SetConfig", prefix="SetConfig failed: ", kind=self._kind):
            await self._plugin.set_config(bytes(request.msgpack_config))
        await stream.send_message(wire_base.SetConfigResponse())
