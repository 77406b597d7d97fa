"""The go-plugin handshake line: formatting ours, and parsing a launched plugin's as go-plugin's client checks it."""

from __future__ import annotations

import pytest

from plugin_host.errors import PluginProtocolError
from plugin_host.goplugin.handshake import (
    APP_PROTOCOL_VERSION,
    CORE_PROTOCOL_VERSION,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    Handshake,
    format_handshake,
    handshake_env,
    parse_handshake,
)

CERT = "M" * 60


def test_constants_match_nomad_and_go_plugin() -> None:
    """The cookie and versions are Nomad's plugins/base Handshake and go-plugin's CoreProtocolVersion."""
    assert MAGIC_COOKIE_KEY == "NOMAD_PLUGIN_MAGIC_COOKIE"
    assert MAGIC_COOKIE_VALUE == "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255"
    assert (CORE_PROTOCOL_VERSION, APP_PROTOCOL_VERSION) == (1, 2)


def test_format_gives_the_five_field_line() -> None:
    """Our serve side prints CORE|APP|NETWORK|ADDRESS|PROTOCOL."""
    assert format_handshake("unix", "/tmp/p/plugin.sock") == "1|2|unix|/tmp/p/plugin.sock|grpc"


def test_format_appends_cert_and_multiplex_only_when_given() -> None:
    """A server certificate and the multiplexing flag become the sixth and seventh fields."""
    assert format_handshake("unix", "/s", server_cert=CERT) == f"1|2|unix|/s|grpc|{CERT}"
    assert format_handshake("tcp", "127.0.0.1:10000", multiplex=True) == "1|2|tcp|127.0.0.1:10000|grpc||true"


@pytest.mark.parametrize("address", ["", "a|b", "a\nb"])
def test_format_refuses_addresses_that_break_the_line(address: str) -> None:
    """An empty address or one holding the separator or a newline cannot be put on the line."""
    with pytest.raises(ValueError, match="address"):
        format_handshake("unix", address)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1|2|unix|/tmp/p/plugin.sock|grpc", Handshake(1, 2, "unix", "/tmp/p/plugin.sock", "grpc")),
        ("1|2|unix|/tmp/p/plugin.sock|grpc|\n", Handshake(1, 2, "unix", "/tmp/p/plugin.sock", "grpc")),
        ("  1|2|tcp|127.0.0.1:10000|grpc  ", Handshake(1, 2, "tcp", "127.0.0.1:10000", "grpc")),
        ("1|2|unix|/s|grpc|short", Handshake(1, 2, "unix", "/s", "grpc")),
        (f"1|2|unix|/s|grpc|{CERT}", Handshake(1, 2, "unix", "/s", "grpc", server_cert=CERT)),
        ("1|2|unix|/s|grpc||true", Handshake(1, 2, "unix", "/s", "grpc", multiplex=True)),
        ("1|2|unix|/s|grpc||false", Handshake(1, 2, "unix", "/s", "grpc", multiplex=False)),
    ],
)
def test_parse_accepts_what_go_plugin_accepts(line: str, expected: Handshake) -> None:
    """Whitespace is trimmed, tcp is accepted, a short sixth field is ignored, the seventh is a boolean."""
    assert parse_handshake(line) == expected


def test_parse_round_trips_format() -> None:
    """A handshake formatted by us parses back to the same value."""
    handshake = Handshake(1, 2, "unix", "/run/x.sock", "grpc", server_cert=CERT, multiplex=False)
    assert parse_handshake(handshake.format()) == handshake


def test_parse_accepts_other_app_versions_when_asked() -> None:
    """``app_versions`` widens the accepted app protocol versions."""
    assert parse_handshake("1|3|unix|/s|grpc", app_versions=(2, 3)).app_version == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", r"unrecognized plugin handshake '': 1 field\(s\)"),
        ("hello world", r"unrecognized plugin handshake 'hello world'"),
        ("1|2|unix", r"3 field\(s\), expected CORE\|APP\|NETWORK\|ADDRESS\|PROTOCOL"),
        ("x|2|unix|/s|grpc", r"core protocol version 'x' is not an integer"),
        ("2|2|unix|/s|grpc", r"unsupported core protocol version 2 .*\(supported: 1\)"),
        ("1|two|unix|/s|grpc", r"app protocol version 'two' is not an integer"),
        ("1|9|unix|/s|grpc", r"unsupported app protocol version 9 .*\(supported: 2\)"),
        ("1|2|udp|/s|grpc", r"unsupported network 'udp' .*\(supported: tcp, unix\)"),
        ("1|2|unix||grpc", r"empty address"),
        ("1|2|unix|/s", r"protocol field missing, .*netrpc.*only grpc is supported"),
        ("1|2|unix|/s|netrpc", r"unsupported plugin protocol 'netrpc'.*only grpc is supported"),
        ("1|2|unix|/s|grpc||maybe", r"multiplexing flag 'maybe' .* is not a boolean"),
    ],
)
def test_parse_names_what_is_wrong(line: str, message: str) -> None:
    """Every bad handshake raises PluginProtocolError naming the field, the value and what was expected."""
    with pytest.raises(PluginProtocolError, match=message):
        parse_handshake(line)


def test_handshake_env_carries_cookie_versions_and_socket_dir() -> None:
    """The launcher's environment for a plugin: cookie, accepted versions, and optionally the socket directory."""
    assert handshake_env() == {MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, ENV_PROTOCOL_VERSIONS: "2"}
    env = handshake_env(unix_socket_dir="/run/p", app_versions=(3, 2))
    assert env[ENV_PROTOCOL_VERSIONS] == "2,3"
    assert env[ENV_UNIX_SOCKET_DIR] == "/run/p"
