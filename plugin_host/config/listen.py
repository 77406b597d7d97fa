"""TCP listen addresses in configs: ``host:port``, ``[v6]:port``; checked when the config loads, not when bound.

The host part is required (an empty one would mean every interface, which a config should say out loud as
``0.0.0.0`` or ``[::]``); it may be an IP address or a host name such as ``localhost``. The port is 1..65535.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from plugin_host._text import truncated

__all__ = ["ListenAddress", "listen_address_problem", "parse_listen_address"]

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def _split(text: str) -> tuple[str, str]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("an IPv6 address must be written [address]:port, as in [::1]:9464")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{truncated(host)} in brackets is not an IPv6 address") from None
        return host, rest[1:]
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("expected host:port, as in 127.0.0.1:9464 (no port given)")
    if ":" in host:
        raise ValueError("an IPv6 address must be written [address]:port, as in [::1]:9464")
    if not host:
        raise ValueError("the host is empty; name the address to bind, as in 127.0.0.1:9464 or 0.0.0.0:9464")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOST_NAME.match(host) or host.replace(".", "").isdigit():
            raise ValueError(f"{truncated(host)} is neither an IP address nor a host name") from None
    return host, port


def parse_listen_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ``("127.0.0.1", 9464)``; raises ``ValueError`` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a host:port string, got {type(text).__name__}")
    if "\x00" in text:
        raise ValueError("contains a NUL byte, which a listen address cannot hold")
    host, port_text = _split(text)
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"port {truncated(port_text)} is not a number; expected 1..65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range; expected 1..65535")
    return host, port


def listen_address_problem(text: str) -> str | None:
    """Why ``text`` is not a listen address, or None."""
    try:
        parse_listen_address(text)
    except ValueError as exc:
        return str(exc)
    return None


def _check(value: str) -> str:
    problem = listen_address_problem(value)
    if problem is not None:
        # A pydantic error (not a ConfigError) so the message carries the key's full path (telemetry.prometheus_listen).
        # The text goes in as context: a brace in the value must not be read as a template field.
        raise PydanticCustomError("listen_address", "{problem}", {"problem": f"{truncated(value)}: {problem}"})
    return value


ListenAddress = Annotated[str, AfterValidator(_check)]
"""A ``host:port`` TCP address a config key names for the host to listen on."""
