"""Judging a kubelet-style registration (``pluginregistration.PluginInfo``): pure functions, no I/O.

The rules follow the kubelet's plugin manager and its CSI registration handler: the type must be ``CSIPlugin``,
the name non-empty, and among the supported versions there must be a CSI 1.x one (the highest 1.x is the one
registered). Unlike the kubelet, an empty endpoint is refused instead of meaning "the registration socket itself":
a CSI driver's registrar always announces the driver's own socket, and the registration socket does not speak CSI.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from plugin_host._sockets import UNIX_SOCKET_PATH_MAX, socket_path_excess
from plugin_host._text import truncated

__all__ = [
    "CSI_PLUGIN_TYPE",
    "REGISTRATION_ALLOC_PREFIX",
    "Accepted",
    "RegistrationRejected",
    "alloc_id_for",
    "highest_supported_version",
    "judge",
    "registration_socket_of",
]

CSI_PLUGIN_TYPE = "CSIPlugin"
"""The only registration type the watcher accepts (the kubelet also knows ``DevicePlugin`` and ``DRAPlugin``)."""

REGISTRATION_ALLOC_PREFIX = "plugins-registry:"
"""Alloc ids of watcher registrations are this prefix followed by the absolute path of the registration socket."""

# Like the kubelet's generic version parser: "v" optional, at least major.minor, anything after the numbers ignored.
_VERSION = re.compile(r"^\s*v?([0-9]+(?:\.[0-9]+)+)(.*)$")


class RegistrationRejected(Exception):
    """A registration the watcher refuses; the message is sent back in ``NotifyRegistrationStatus``."""


@dataclass(frozen=True)
class Accepted:
    """What a valid registration registers."""

    name: str
    endpoint: str
    version: str
    """The supported version chosen, as the plugin spelled it."""
    version_key: tuple[int, ...]
    """The chosen version as numbers, to compare two registrations of one name."""


def _parse(version: str) -> tuple[int, ...] | None:
    match = _VERSION.match(version)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def highest_supported_version(versions: list[str]) -> tuple[str, tuple[int, ...]]:
    """The highest CSI 1.x version among ``versions`` (as spelled, and as numbers); rejects when there is none."""
    if not versions:
        raise RegistrationRejected("supported_versions is empty; expected at least one CSI 1.x version such as '1.0.0'")
    best: tuple[str, tuple[int, ...]] | None = None
    for version in versions:
        key = _parse(version)
        if key is None or key[0] != 1:
            continue
        if best is None or key > best[1]:
            best = (version, key)
    if best is None:
        raise RegistrationRejected(
            f"supported_versions {truncated(versions)} has no supported CSI version; expected a 1.x version "
            f"such as '1.0.0'"
        )
    return best


def judge(ptype: str, name: str, endpoint: str, versions: list[str]) -> Accepted:
    """Check one GetInfo answer; :class:`RegistrationRejected` names the field, the value and what was expected."""
    if ptype != CSI_PLUGIN_TYPE:
        raise RegistrationRejected(f"plugin type {truncated(ptype)} is not supported; expected {CSI_PLUGIN_TYPE!r}")
    if not name:
        raise RegistrationRejected("plugin name is empty; expected the CSI driver's name")
    if not endpoint:
        raise RegistrationRejected(
            f"endpoint of plugin {truncated(name)} is empty; expected the absolute path of its CSI socket"
        )
    endpoint = endpoint.removeprefix("unix://")
    if not os.path.isabs(endpoint):
        raise RegistrationRejected(
            f"endpoint {truncated(endpoint)} of plugin {truncated(name)} is not absolute; expected the absolute "
            f"path of its CSI socket"
        )
    size = socket_path_excess(endpoint)
    if size is not None:
        raise RegistrationRejected(
            f"endpoint {truncated(endpoint)} of plugin {truncated(name)} is {size} bytes; the Unix socket limit "
            f"is {UNIX_SOCKET_PATH_MAX}"
        )
    version, key = highest_supported_version(versions)
    return Accepted(name=name, endpoint=endpoint, version=version, version_key=key)


def alloc_id_for(registration_socket: str) -> str:
    """The alloc id of the registration made through ``registration_socket`` (an absolute path)."""
    return REGISTRATION_ALLOC_PREFIX + registration_socket


def registration_socket_of(alloc_id: str) -> str | None:
    """The registration socket behind a watcher alloc id, or None for an alloc id the watcher did not make."""
    if not alloc_id.startswith(REGISTRATION_ALLOC_PREFIX):
        return None
    return alloc_id[len(REGISTRATION_ALLOC_PREFIX) :]
