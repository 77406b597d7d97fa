"""KubeletRegistrationServer against plugins that send bytes a v1beta1 plugin must not send (raw grpclib handlers
answering GetDevicePluginOptions, Allocate, PreStartContainer or ListAndWatch with chosen bytes), and against
ListAndWatch messages listing a device id twice."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Cardinality, Handler
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._proto import v1beta1 as wire
from plugin_host.device import DeviceGroup, FingerprintResponse
from plugin_host.errors import PluginProtocolError
from plugin_host.kubelet.host.registration_server import KUBELET_ALLOC_ID, KUBELET_PROTOCOL, KubeletRegistrationServer
from plugin_host.registry import PLUGIN_TYPE_DEVICE, PluginInfo, Registry
from plugin_host.testing.device_plugin import ScriptedPlugin, register, serve_plugin, wire_devices

pytestmark = pytest.mark.anyio

WAIT = 5.0
RESOURCE = "example.com/widget"
SERVICE = "/v1beta1.DevicePlugin"


@pytest.fixture
def plugin_dir(short_tmp: Path) -> Path:
    return short_tmp / "dp"


class _Raw:
    """A message that is just bytes, sent as they are: what a broken plugin puts on the wire."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> _Raw:
        return cls(data)


class _RawPlugin(ScriptedPlugin):
    """A scripted plugin whose answers to the RPCs named in ``raw`` are those bytes (ListAndWatch: a good list of
    its devices first, then the bytes once ``send_raw_list()`` is called)."""

    def __init__(self, raw: dict[str, bytes], options: wire.DevicePluginOptions | None = None) -> None:
        super().__init__(options)
        self.raw = raw
        self._send_list = anyio.Event()

    def send_raw_list(self) -> None:
        self._send_list.set()

    def _unary(self, rpc: str) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        async def handle(stream: Stream[Any, Any]) -> None:
            await stream.recv_message()
            await stream.send_message(_Raw(self.raw[rpc]))

        return handle

    async def _list(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(_Raw(bytes(wire.ListAndWatchResponse(devices=self.devices))))
        await self._send_list.wait()
        await stream.send_message(_Raw(self.raw["ListAndWatch"]))
        await anyio.sleep_forever()

    def __mapping__(self) -> dict[str, Handler]:
        mapping: dict[str, Handler] = super().__mapping__()
        for rpc in self.raw:
            if rpc == "ListAndWatch":
                mapping[f"{SERVICE}/{rpc}"] = Handler(self._list, Cardinality.UNARY_STREAM, _Raw, _Raw)
            else:
                mapping[f"{SERVICE}/{rpc}"] = Handler(self._unary(rpc), Cardinality.UNARY_UNARY, _Raw, _Raw)
        return mapping


async def _next_group(stream: AsyncIterator[FingerprintResponse]) -> DeviceGroup:
    with anyio.fail_after(WAIT):
        response = await anext(stream)
    assert response.error is None, response.error
    assert response.device_group is not None
    return response.device_group


def _health(group: DeviceGroup) -> dict[str, bool]:
    return {d.id: d.healthy for d in group.devices}


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"\x08", "EOFError"),  # a truncated varint: betterproto's EOFError
        (b"\x0a\x01x", "pre_start_required is list, expected bool"),  # bool field 1 as bytes: betterproto keeps a list
    ],
    ids=["truncated", "wrong wire type"],
)
async def test_a_garbage_options_reply_refuses_the_registration(plugin_dir: Path, reply: bytes, problem: str) -> None:
    """A GetDevicePluginOptions reply that does not decode answers the registering plugin kubelet's options error
    naming the plugin and the RPC; nothing is registered and the server goes on to take a good plugin."""
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(_RawPlugin({"GetDevicePluginOptions": reply}), plugin_dir / "bad.sock"),
        serve_plugin(ScriptedPlugin(), plugin_dir / "good.sock"),
    ):
        with pytest.raises(GRPCError) as caught:
            await register(server.socket_path, endpoint="bad.sock", resource_name=RESOURCE)
        message = str(caught.value.message)
        bad = os.fspath(plugin_dir.absolute() / "bad.sock")
        assert message.startswith(
            f"failed to get device plugin options: kubelet device plugin {RESOURCE!r} at {bad!r} sent a reply to"
            " GetDevicePluginOptions that does not decode: "
        ), message
        assert "not a valid DevicePluginOptions" in message
        assert problem in message
        assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []
        await register(server.socket_path, endpoint="good.sock", resource_name=RESOURCE)
        assert server.resource_names() == [RESOURCE]


@pytest.mark.parametrize(
    ("rpc", "reply", "problem"),
    [
        ("Allocate", b"\x0a\x80", "EOFError"),
        ("Allocate", b"\x08\x01", "container_responses[0] is int, expected a ContainerAllocateResponse"),
        ("Allocate", b"\x0a\x02\x08\x01", "AttributeError"),  # an env entry as a varint
        ("Allocate", b"\x0a\x04\x12\x02\x08\x01", "container_responses[0].mounts[0].container_path is int"),
        ("PreStartContainer", b"\x08", "EOFError"),
    ],
    ids=["truncated", "int container", "int env entry", "int mount path", "pre-start truncated"],
)
async def test_a_garbage_allocate_reply_is_a_protocol_error(
    plugin_dir: Path, rpc: str, reply: bytes, problem: str
) -> None:
    """reserve() turns an Allocate (or PreStartContainer) reply that does not decode into PluginProtocolError naming
    the plugin and the RPC, never betterproto's own exception or a value of the wrong type."""
    plugin = _RawPlugin({rpc: reply}, wire.DevicePluginOptions(pre_start_required=rpc == "PreStartContainer"))
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        client = server.dispense(await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, RESOURCE, KUBELET_ALLOC_ID))
        stream = client.fingerprint()
        await _next_group(stream)
        await stream.aclose()
        with pytest.raises(PluginProtocolError) as caught:
            await client.reserve(["d1"])
        message = str(caught.value)
        assert f"kubelet device plugin {RESOURCE!r}" in message
        assert f"sent a reply to {rpc} that does not decode" in message
        assert problem in message


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\x0a\x02\x08\x01", "devices[0].id is int, expected string"),
        (b"\x0a\x02\x10\x01", "devices[0].health is int, expected string"),
        (b"\x08\x01", "devices[0] is int, expected a Device"),
    ],
    ids=["int id", "int health", "int device"],
)
async def test_a_wrongly_typed_list_and_watch_message_fails_the_stream_not_the_server(
    plugin_dir: Path, message: bytes, problem: str
) -> None:
    """A ListAndWatch message whose fields came with other wire types (betterproto reads an int for an id) fails the
    stream: the devices turn unhealthy with the reason, and the server keeps taking registrations."""
    plugin = _RawPlugin({"ListAndWatch": message})
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "bad.sock"),
        serve_plugin(ScriptedPlugin(), plugin_dir / "good.sock"),
    ):
        info = PluginInfo(name=RESOURCE, type=PLUGIN_TYPE_DEVICE, options={"protocol": KUBELET_PROTOCOL})
        stream = server.dispense(info).fingerprint()
        await register(server.socket_path, endpoint="bad.sock", resource_name=RESOURCE)
        assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
        plugin.send_raw_list()
        group = await _next_group(stream)
        assert _health(group) == {"d1": False, "d2": False}
        assert "not a valid ListAndWatchResponse" in group.devices[0].health_description
        assert problem in group.devices[0].health_description
        await register(server.socket_path, endpoint="good.sock", resource_name=RESOURCE)
        assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
        await stream.aclose()


async def test_a_device_listed_twice_keeps_its_last_entry_with_one_warning_per_message(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Duplicate ids in one ListAndWatch message make one device with the last entry's health (kubelet keeps a map
    by id), at the first entry's place; each such message logs one warning naming the repeated ids."""
    caplog.set_level(logging.WARNING, logger="plugin_host.kubelet")
    plugin = ScriptedPlugin()
    plugin.set_devices([*wire_devices(["d1", "d2"]), *wire_devices(unhealthy=["d1"])])
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        info = PluginInfo(name=RESOURCE, type=PLUGIN_TYPE_DEVICE, options={"protocol": KUBELET_PROTOCOL})
        client = server.dispense(info)
        stream = client.fingerprint()
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        group = await _next_group(stream)
        assert [(d.id, d.healthy) for d in group.devices] == [("d1", False), ("d2", True)]
        plugin.set_devices([*wire_devices(["d2", "d1", "d2", "d1", "d1"]), *wire_devices(["d3"])])
        group = await _next_group(stream)
        assert [(d.id, d.healthy) for d in group.devices] == [("d2", True), ("d1", True), ("d3", True)]
        await stream.aclose()
        reservation = await client.reserve(["d1"])
        assert reservation.envs == {"IDS": "d1"}
    warnings = [r.getMessage() for r in caplog.records if "more than once" in r.getMessage()]
    assert warnings == [
        f"device plugin {RESOURCE!r} listed devices ['d1'] more than once in one ListAndWatch message;"
        " kept the last entry of each",
        f"device plugin {RESOURCE!r} listed devices ['d2', 'd1'] more than once in one ListAndWatch message;"
        " kept the last entry of each",
    ]
