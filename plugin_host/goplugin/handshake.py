"""The HashiCorp go-plugin handshake as Nomad uses it: the magic cookie, the versions, and the one line a plugin
prints on stdout to say where it listens (``CORE|APP|NETWORK|ADDRESS|PROTOCOL[|SERVER_CERT[|MULTIPLEX]]``).

Both sides live here: :func:`format_handshake` for a plugin we serve, :func:`parse_handshake` for a plugin we launch.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from plugin_host.errors import PluginProtocolError

__all__ = [
    "APP_PROTOCOL_VERSION",
    "CORE_PROTOCOL_VERSION",
    "ENV_MAX_PORT",
    "ENV_MIN_PORT",
    "ENV_MULTIPLEX_GRPC",
    "ENV_PROTOCOL_VERSIONS",
    "ENV_UNIX_SOCKET_DIR",
    "ENV_UNIX_SOCKET_GROUP",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "NETWORKS",
    "PROTOCOL_GRPC",
    "PROTOCOL_NETRPC",
    "Handshake",
    "format_handshake",
    "handshake_env",
    "parse_handshake",
]

# Nomad's plugins/base/plugin.go Handshake: not a secret, only proof that the launcher meant to start a plugin.
MAGIC_COOKIE_KEY = "NOMAD_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255"

# go-plugin's own protocol (CoreProtocolVersion) and Nomad's plugin API version on top of it (0.9+: gRPC).
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 2

PROTOCOL_GRPC = "grpc"
PROTOCOL_NETRPC = "netrpc"
NETWORKS = frozenset({"unix", "tcp"})

# Environment a go-plugin client sets for the plugin process.
ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MIN_PORT = "PLUGIN_MIN_PORT"
ENV_MAX_PORT = "PLUGIN_MAX_PORT"
ENV_UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
ENV_UNIX_SOCKET_GROUP = "PLUGIN_UNIX_SOCKET_GROUP"
ENV_MULTIPLEX_GRPC = "PLUGIN_MULTIPLEX_GRPC"

# go-plugin ignores a sixth field of 50 characters or fewer (old servers put other data there).
_MIN_CERT_LENGTH = 51


@dataclass(frozen=True, slots=True)
class Handshake:
    """A parsed handshake line: where the plugin listens and what it speaks."""

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str
    server_cert: str = ""
    multiplex: bool | None = None

    def format(self) -> str:
        """This handshake as the line a plugin prints (without the newline)."""
        return format_handshake(
            self.network,
            self.address,
            app_version=self.app_version,
            core_version=self.core_version,
            protocol=self.protocol,
            server_cert=self.server_cert,
            multiplex=self.multiplex,
        )


def format_handshake(
    network: str,
    address: str,
    *,
    app_version: int = APP_PROTOCOL_VERSION,
    core_version: int = CORE_PROTOCOL_VERSION,
    protocol: str = PROTOCOL_GRPC,
    server_cert: str = "",
    multiplex: bool | None = None,
) -> str:
    """The handshake line (no newline), e.g. ``1|2|unix|/tmp/plugin123/plugin.sock|grpc``.

    The server certificate and the multiplexing flag are appended only when given, as go-plugin does.
    """
    for name, value in (("network", network), ("address", address), ("protocol", protocol)):
        if not value or "|" in value or "\n" in value:
            raise ValueError(
                f"handshake {name} {value!r} is invalid, expected a non-empty value without '|' or a newline"
            )
    parts = [str(core_version), str(app_version), network, address, protocol]
    if server_cert or multiplex is not None:
        parts.append(server_cert)
    if multiplex is not None:
        parts.append("true" if multiplex else "false")
    return "|".join(parts)


def _int_field(value: str, what: str, line: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PluginProtocolError(
            f"plugin handshake {line!r}: {what} {value!r} is not an integer, expected {what} as a decimal number"
        ) from None


def parse_handshake(line: str, *, app_versions: Collection[int] = (APP_PROTOCOL_VERSION,)) -> Handshake:
    """Parse the handshake line a plugin printed on stdout, checking it as go-plugin's client does.

    Raises :class:`PluginProtocolError` naming the field, the value and what was expected: too few fields, a core
    protocol other than 1, an app protocol not in ``app_versions``, an unknown network, or a protocol other than
    gRPC (go-plugin defaults a missing protocol field to net/rpc, which we do not speak).
    """
    text = line.strip()
    parts = text.split("|")
    if len(parts) < 4:
        raise PluginProtocolError(
            f"unrecognized plugin handshake {text!r}: {len(parts)} field(s),"
            " expected CORE|APP|NETWORK|ADDRESS|PROTOCOL (is this a go-plugin plugin?)"
        )
    core_version = _int_field(parts[0], "core protocol version", text)
    if core_version != CORE_PROTOCOL_VERSION:
        raise PluginProtocolError(
            f"unsupported core protocol version {core_version} in plugin handshake {text!r}"
            f" (supported: {CORE_PROTOCOL_VERSION})"
        )
    app_version = _int_field(parts[1], "app protocol version", text)
    if app_version not in app_versions:
        supported = ", ".join(str(v) for v in sorted(app_versions))
        raise PluginProtocolError(
            f"unsupported app protocol version {app_version} in plugin handshake {text!r} (supported: {supported})"
        )
    network, address = parts[2], parts[3]
    if network not in NETWORKS:
        raise PluginProtocolError(
            f"unsupported network {network!r} in plugin handshake {text!r} (supported: {', '.join(sorted(NETWORKS))})"
        )
    if not address:
        raise PluginProtocolError(f"empty address in plugin handshake {text!r}, expected a socket path or host:port")
    if len(parts) < 5:
        raise PluginProtocolError(
            f"plugin handshake {text!r} has its protocol field missing, which go-plugin reads as"
            f" {PROTOCOL_NETRPC!r}: only grpc is supported"
        )
    protocol = parts[4]
    if protocol != PROTOCOL_GRPC:
        raise PluginProtocolError(
            f"unsupported plugin protocol {protocol!r} in plugin handshake {text!r}: only grpc is supported"
        )
    server_cert = parts[5] if len(parts) >= 6 and len(parts[5]) >= _MIN_CERT_LENGTH else ""
    multiplex: bool | None = None
    if len(parts) >= 7:
        flag = parts[6].lower()
        if flag not in ("true", "false", "1", "0", "t", "f"):
            raise PluginProtocolError(
                f"multiplexing flag {parts[6]!r} in plugin handshake {text!r} is not a boolean, expected true or false"
            )
        multiplex = flag in ("true", "1", "t")
    return Handshake(core_version, app_version, network, address, protocol, server_cert, multiplex)


def handshake_env(
    *, unix_socket_dir: str | None = None, app_versions: Collection[int] = (APP_PROTOCOL_VERSION,)
) -> dict[str, str]:
    """The environment a go-plugin client gives a plugin it launches (cookie, accepted versions, socket directory)."""
    env = {
        MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
        ENV_PROTOCOL_VERSIONS: ",".join(str(v) for v in sorted(app_versions)),
    }
    if unix_socket_dir is not None:
        env[ENV_UNIX_SOCKET_DIR] = unix_socket_dir
    return env
