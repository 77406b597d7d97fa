"""Argument checks shared by the registry's entry points; each failure names the field and the value."""

from __future__ import annotations

import os

from plugin_host._sockets import UNIX_SOCKET_PATH_MAX, socket_path_excess
from plugin_host._text import truncated
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
    _text("type", info.type)
    _text("name", info.name)
    _text("version", info.version)
    _text("alloc_id", info.alloc_id)
    _text("connection_info.socket_path", info.connection_info.socket_path)
    for key, value in info.options.items():
        _text("options key", key)
        _text(f"options[{truncated(key)}]", value)
    return info


def _text(field: str, value: str) -> None:
    """``value`` is text the state file can store: UTF-8 encodable (no lone surrogates, as os.fsdecode makes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPluginError(
            f"{field} {truncated(value)} is not valid UTF-8 text (character {exc.start} is a lone surrogate);"
            " expected text the state file can store"
        ) from None
