"""Argument checks shared by the registry's entry points; each failure names the field and the value."""

from __future__ import annotations

import os

from plugin_host._sockets import UNIX_SOCKET_PATH_MAX, socket_path_excess
from plugin_host.errors import InvalidPluginError
from plugin_host.registry.models import PluginInfo


def require(field: str, value: object) -> str:
    """Return ``value`` when it is a non-empty string, else raise naming the field."""
    if not isinstance(value, str) or not value:
        raise InvalidPluginError(f"{field} must be a non-empty string, got {value!r}")
    return value


def socket_path(path: str) -> None:
    """Check a Unix socket path: non-empty, absolute, and within the kernel's sun_path limit."""
    if not path:
        raise InvalidPluginError(
            f"connection_info.socket_path must be an absolute Unix socket path of at most {UNIX_SOCKET_PATH_MAX}"
            f" bytes, got {path!r}"
        )
    if not os.path.isabs(path):
        raise InvalidPluginError(
            f"connection_info.socket_path {path!r} is relative; expected an absolute path"
            f" (at most {UNIX_SOCKET_PATH_MAX} bytes)"
        )
    size = socket_path_excess(path)
    if size is not None:
        raise InvalidPluginError(
            f"connection_info.socket_path {path!r} is {size} bytes; the Unix socket limit is"
            f" {UNIX_SOCKET_PATH_MAX} bytes"
        )


def plugin_info(info: object) -> PluginInfo:
    """Check a registration in Nomad's order of fields (type, name, connection info), then the socket path."""
    if not isinstance(info, PluginInfo):
        raise InvalidPluginError(f"info must be a PluginInfo, got {type(info).__name__}")
    require("type", info.type)
    require("name", info.name)
    if info.connection_info is None:
        raise InvalidPluginError(
            f"connection_info of plugin {info.name!r} ({info.type}) is missing; expected a PluginConnectionInfo"
        )
    socket_path(info.connection_info.socket_path)
    return info
