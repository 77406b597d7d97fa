"""KubeletRegistrationServer against a scripted Kubernetes device plugin: real grpclib servers on Unix sockets on both
sides, a real Registry."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from plugin_host._proto import v1beta1 as wire
from plugin_host.device import ContainerReservation, DeviceGroup, DeviceSpec, FingerprintResponse, Mount
from plugin_host.errors import ConfigError, DeviceError, PluginNotFoundError, SocketInUseError
from plugin_host.kubelet.export._list_encode import EncodedListAndWatchResponse
from plugin_host.kubelet.host.registration_server import (
    KUBELET_ALLOC_ID,
    KUBELET_PROTOCOL,
    KubeletRegistrationServer,
    is_kubelet_plugin,
)
from plugin_host.registry import PLUGIN_TYPE_DEVICE, EventType, PluginConnectionInfo, PluginInfo, Registry
from plugin_host.testing.device_plugin import ScriptedPlugin, register, serve_plugin, wire_devices

pytestmark = pytest.mark.anyio

WAIT = 5.0
RESOURCE = "example.com/widget"


@pytest.fixture
def plugin_dir(short_tmp: Path) -> Path:
    return short_tmp / "dp"


async def _next_group(stream: AsyncIterator[FingerprintResponse]) -> DeviceGroup:
    with anyio.fail_after(WAIT):
        response = await anext(stream)
    assert response.error is None, response.error
    assert response.device_group is not None
    return response.device_group


def _health(group: DeviceGroup) -> dict[str, bool]:
    return {d.id: d.healthy for d in group.devices}


class _Listener:
    """A plain Unix listener that counts the connections made to it (a plugin socket nobody should dial)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.changed = anyio.Event()

    async def handle(self, stream: SocketStream) -> None:
        self.accepted += 1
        self.changed.set()
        self.changed = anyio.Event()
        await stream.aclose()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(WAIT):
            while self.accepted < count:
                await self.changed.wait()


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "resource_name", "message"),
    [
        (
            "v1alpha",
            RESOURCE,
            'requested API version "v1alpha" is not supported by kubelet. Supported version is ["v1beta1"]',
        ),
        ("v1beta1", "foo", 'the ResourceName "foo" is invalid'),
        ("v1beta1", "kubernetes.io/foo", 'the ResourceName "kubernetes.io/foo" is invalid'),
        ("v1beta1", "x.com/" + "a" * 64, f'the ResourceName "x.com/{"a" * 64}" is invalid'),
        ("v1beta1", "requests.x.com/foo", 'the ResourceName "requests.x.com/foo" is invalid'),
        ("v1beta1", "X.com/foo", 'the ResourceName "X.com/foo" is invalid'),
    ],
)
async def test_register_refuses_bad_version_and_resource_names_with_kubelets_message(
    plugin_dir: Path, version: str, resource_name: str, message: str
) -> None:
    """A wrong version or a non-extended resource name is refused with kubelet's text, and the plugin is not dialled."""
    plugin = ScriptedPlugin()
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "p.sock"),
    ):
        with pytest.raises(GRPCError) as caught:
            await register(server.socket_path, endpoint="p.sock", resource_name=resource_name, version=version)
        assert caught.value.status is Status.UNKNOWN
        assert caught.value.message == message
        assert plugin.options_calls == 0
        assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("../evil.sock", "expected a socket file name inside the plugin directory, without '/'"),
        ("sub/evil.sock", "expected a socket file name inside the plugin directory, without '/'"),
        ("..", "expected a socket file name, not a directory"),
        ("", "the endpoint is empty"),
    ],
)
async def test_register_refuses_an_endpoint_outside_the_plugin_dir_without_dialling(
    short_tmp: Path, plugin_dir: Path, endpoint: str, problem: str
) -> None:
    """An endpoint with '/' or '..' (or none) is refused, and no connection reaches the socket it points at."""
    (plugin_dir / "sub").mkdir(parents=True)
    listener = _Listener()
    async with (
        await anyio.create_unix_listener(short_tmp / "evil.sock") as outside,
        await anyio.create_unix_listener(plugin_dir / "sub" / "evil.sock") as inside,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(outside.serve, listener.handle)
        tg.start_soon(inside.serve, listener.handle)
        async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as server:
            with pytest.raises(GRPCError) as caught:
                await register(server.socket_path, endpoint=endpoint, resource_name=RESOURCE)
            assert caught.value.message == f'the endpoint "{endpoint}" is invalid: {problem}'
            assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []
        # Connections are accepted in order: our own probe is the first one, so the server dialled nothing.
        for path in (short_tmp / "evil.sock", plugin_dir / "sub" / "evil.sock"):
            probe = await anyio.connect_unix(path)
            await probe.aclose()
        await listener.wait_for(2)
        assert listener.accepted == 2
        tg.cancel_scope.cancel()


async def test_the_listener_check_sees_a_dial(plugin_dir: Path) -> None:
    """Control for the test above: a valid endpoint on a socket that speaks no gRPC is dialled, and Register fails."""
    plugin_dir.mkdir()
    listener = _Listener()
    async with await anyio.create_unix_listener(plugin_dir / "raw.sock") as raw, anyio.create_task_group() as tg:
        tg.start_soon(raw.serve, listener.handle)
        async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry, dial_timeout=2) as server:
            with pytest.raises(GRPCError) as caught:
                await register(server.socket_path, endpoint="raw.sock", resource_name=RESOURCE)
        assert str(caught.value.message).startswith("failed to dial device plugin: ")
        await listener.wait_for(1)
        tg.cancel_scope.cancel()


async def test_register_fails_when_the_plugin_is_not_there(plugin_dir: Path) -> None:
    """Register for an endpoint nobody serves answers kubelet's dial error and registers nothing."""
    async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as server:
        with pytest.raises(GRPCError) as caught:
            await register(server.socket_path, endpoint="absent.sock", resource_name=RESOURCE)
        assert str(caught.value.message).startswith("failed to dial device plugin: ")
        assert "absent.sock" in str(caught.value.message)
        assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []


async def test_register_fails_when_options_fail(plugin_dir: Path) -> None:
    """A plugin whose GetDevicePluginOptions fails is refused with kubelet's options error."""
    plugin = ScriptedPlugin()
    plugin.options_error = GRPCError(Status.INTERNAL, "options broke")
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "p.sock"),
    ):
        with pytest.raises(GRPCError) as caught:
            await register(server.socket_path, endpoint="p.sock", resource_name=RESOURCE)
        assert str(caught.value.message).startswith("failed to get device plugin options: ")
        assert "options broke" in str(caught.value.message)
        assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dial_timeout": 0}, "dial_timeout must be a positive number of seconds, got 0"),
        ({"call_timeout": -1.0}, "call_timeout must be a positive number of seconds, got -1.0"),
        ({"stop_grace_period": True}, "stop_grace_period must be a positive number of seconds, got True"),
    ],
)
def test_constructor_rejects_bad_numbers(plugin_dir: Path, kwargs: dict[str, object], message: str) -> None:
    """Timeouts and the grace period must be positive numbers; the error names the argument and the value."""
    with pytest.raises(ConfigError) as caught:
        KubeletRegistrationServer(plugin_dir, Registry(), **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_constructor_rejects_an_empty_plugin_dir() -> None:
    """An empty plugin_dir is a ConfigError."""
    with pytest.raises(ConfigError, match="plugin_dir must name a directory"):
        KubeletRegistrationServer("", Registry())


async def test_a_live_kubelet_socket_is_not_taken(plugin_dir: Path) -> None:
    """A second server on the same directory fails with SocketInUseError while the first serves."""
    async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as first:
        with pytest.raises(SocketInUseError, match=r"already in use \(another process is serving it\)"):
            async with KubeletRegistrationServer(plugin_dir, registry):
                pass
        assert first.socket_path.exists()


async def test_a_stale_kubelet_socket_is_replaced_and_removed_at_exit(plugin_dir: Path) -> None:
    """A socket left by a dead process is replaced; leaving removes the socket and keeps other files in the dir."""
    plugin_dir.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(plugin_dir / "kubelet.sock"))
    stale.close()
    other = plugin_dir / "someone-else.sock"
    other_sock = socket.socket(socket.AF_UNIX)
    other_sock.bind(str(other))
    other_sock.close()
    async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as server:
        assert server.socket_path.is_socket()
    assert not (plugin_dir / "kubelet.sock").exists()
    assert other.is_socket()


# --- registration and devices -------------------------------------------------------------------------------------


async def test_register_dials_back_gets_options_and_registers_in_the_registry(plugin_dir: Path) -> None:
    """Register answers only after GetDevicePluginOptions; the registry then holds the plugin as type device."""
    plugin = ScriptedPlugin(wire.DevicePluginOptions(pre_start_required=True))
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        assert plugin.options_calls == 1
        info = await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, RESOURCE, KUBELET_ALLOC_ID)
        assert info.connection_info == PluginConnectionInfo(socket_path=str(plugin_dir.absolute() / "widget.sock"))
        assert info.options == {
            "protocol": KUBELET_PROTOCOL,
            "api_version": "v1beta1",
            "resource_name": RESOURCE,
            "endpoint": "widget.sock",
            "pre_start_required": "true",
            "get_preferred_allocation_available": "false",
        }
        assert is_kubelet_plugin(info)
        assert server.resource_names() == [RESOURCE]
        with anyio.fail_after(WAIT):
            await plugin.stream_opened.wait()


async def test_dispensed_client_follows_list_and_watch(plugin_dir: Path) -> None:
    """fingerprint() sends the device group at once and again after every ListAndWatch message."""
    plugin = ScriptedPlugin()
    async with (
        Registry(dispensers={PLUGIN_TYPE_DEVICE: lambda info: server.dispense(info)}) as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        async with await registry.dispense_plugin(PLUGIN_TYPE_DEVICE, RESOURCE) as client:
            info = await client.plugin_info()
            assert (info.type, info.name, info.plugin_api_versions) == ("device", RESOURCE, ("v1beta1",))
            stream = client.fingerprint()
            group = await _next_group(stream)
            assert (group.vendor, group.type, group.name) == ("example.com", "widget", "widget")
            assert group.id == "example.com/widget/widget"
            assert _health(group) == {"d1": True, "d2": True}
            plugin.set_devices(wire_devices(["d1"], ["d3"]))
            group = await _next_group(stream)
            assert _health(group) == {"d1": True, "d3": False}
            assert group.devices[1].health_description == "the device plugin reports health 'Unhealthy'"
            await stream.aclose()


async def test_stream_end_marks_devices_unhealthy_and_reregistration_restores_them(plugin_dir: Path) -> None:
    """When ListAndWatch ends every device turns unhealthy; a new Register brings the devices back healthy."""
    plugin = ScriptedPlugin()
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
    ):
        info = PluginInfo(name=RESOURCE, type=PLUGIN_TYPE_DEVICE, options={"protocol": KUBELET_PROTOCOL})
        client = server.dispense(info)
        stream = client.fingerprint()
        async with serve_plugin(plugin, plugin_dir / "widget.sock"):
            await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
            assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
            plugin.end_streams()
            group = await _next_group(stream)
            assert _health(group) == {"d1": False, "d2": False}
            assert "ListAndWatch stream ended" in group.devices[0].health_description
            with pytest.raises(DeviceError, match="is disconnected"):
                await client.reserve(["d1"])
        # The plugin restarts (new process, same socket name) and registers again.
        restarted = ScriptedPlugin()
        async with serve_plugin(restarted, plugin_dir / "widget.sock"):
            await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
            assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
            reservation = await client.reserve(["d2"])
            assert reservation.envs == {"IDS": "d2"}
            assert restarted.allocations == [[["d2"]]]
        await stream.aclose()
        # Still registered (the registration outlives the connection until the grace period ends).
        assert [i.name for i in await registry.list_plugins(PLUGIN_TYPE_DEVICE)] == [RESOURCE]


async def test_reregistration_replaces_the_old_connection(plugin_dir: Path) -> None:
    """A second Register for the resource on another endpoint replaces the first: its stream is dropped."""
    first, second = ScriptedPlugin(), ScriptedPlugin()
    second.set_devices(wire_devices(["n1"]))
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(first, plugin_dir / "a.sock"),
        serve_plugin(second, plugin_dir / "b.sock"),
    ):
        async with registry.subscribe(PLUGIN_TYPE_DEVICE) as events:
            await register(server.socket_path, endpoint="a.sock", resource_name=RESOURCE)
            await register(server.socket_path, endpoint="b.sock", resource_name=RESOURCE)
            with anyio.fail_after(WAIT):
                kinds = [(await anext(events)).event_type, (await anext(events)).event_type]
        assert kinds == [EventType.REGISTERED, EventType.UPDATED]
        info = await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, RESOURCE, KUBELET_ALLOC_ID)
        assert info.connection_info is not None
        assert info.connection_info.socket_path.endswith("/b.sock")
        stream = server.dispense(info).fingerprint()
        # The old devices stay until the new plugin's first ListAndWatch message replaces them.
        while _health(await _next_group(stream)) != {"n1": True}:
            pass
        await stream.aclose()
        with anyio.fail_after(WAIT):
            await first.stream_closed.wait()


async def test_reserve_converts_the_allocate_response(plugin_dir: Path) -> None:
    """reserve() sends one container request and maps envs, mounts and device nodes; PreStartContainer follows."""
    plugin = ScriptedPlugin(wire.DevicePluginOptions(pre_start_required=True))
    plugin.allocate_reply = wire.AllocateResponse(
        container_responses=[
            wire.ContainerAllocateResponse(
                envs={"WIDGET": "1"},
                mounts=[wire.Mount(container_path="/data", host_path="/srv/data", read_only=True)],
                devices=[wire.DeviceSpec(container_path="/dev/w0", host_path="/dev/widget0", permissions="rw")],
                annotations={"a": "b"},
            )
        ]
    )
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        info = await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, RESOURCE, KUBELET_ALLOC_ID)
        client = server.dispense(info)
        stream = client.fingerprint()
        await _next_group(stream)
        await stream.aclose()
        reservation = await client.reserve(["d1", "d2"])
        assert reservation == ContainerReservation(
            envs={"WIDGET": "1"},
            mounts=(Mount(task_path="/data", host_path="/srv/data", read_only=True),),
            devices=(DeviceSpec(task_path="/dev/w0", host_path="/dev/widget0", cgroup_perms="rw"),),
        )
        assert plugin.allocations == [[["d1", "d2"]]]
        assert plugin.pre_starts == [["d1", "d2"]]


async def test_reserve_errors_name_the_problem(plugin_dir: Path) -> None:
    """Unknown, unhealthy and repeated ids are refused before Allocate; a plugin refusal is a DeviceError."""
    plugin = ScriptedPlugin()
    plugin.set_devices(wire_devices(["d1"], ["sick"]))
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        info = await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, RESOURCE, KUBELET_ALLOC_ID)
        client = server.dispense(info)
        stream = client.fingerprint()
        await _next_group(stream)
        await stream.aclose()
        with pytest.raises(DeviceError, match="has no device 'nope'; its devices: d1, sick"):
            await client.reserve(["nope"])
        with pytest.raises(DeviceError, match=r"device 'sick' of kubelet device plugin .* is unhealthy"):
            await client.reserve(["sick"])
        with pytest.raises(DeviceError, match=r"'d1' of 'example\.com/widget' is listed twice"):
            await client.reserve(["d1", "d1"])
        with pytest.raises(DeviceError, match="no device ids given"):
            await client.reserve([])
        assert plugin.allocations == []
        plugin.allocate_error = GRPCError(Status.RESOURCE_EXHAUSTED, "all busy")
        with pytest.raises(DeviceError, match="refused Allocate of devices \\['d1'\\]: all busy"):
            await client.reserve(["d1"])


async def test_dispense_refuses_a_registration_of_another_protocol(plugin_dir: Path) -> None:
    """dispense() only serves registrations made through a kubelet registration socket."""
    server = KubeletRegistrationServer(plugin_dir, Registry())
    info = PluginInfo(name="fs-device", type=PLUGIN_TYPE_DEVICE, connection_info=PluginConnectionInfo(socket_path="/x"))
    with pytest.raises(PluginNotFoundError, match="not registered through a kubelet registration socket"):
        server.dispense(info)


async def test_an_unregistered_resource_ends_the_fingerprint_stream_with_an_error(plugin_dir: Path) -> None:
    """A client whose resource is not (or no longer) registered gets one error response, then the end."""
    async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as server:
        client = server.dispense(PluginInfo(name=RESOURCE, type="device", options={"protocol": KUBELET_PROTOCOL}))
        responses = [r async for r in client.fingerprint()]
        assert responses == [FingerprintResponse(error=f"kubelet device plugin {RESOURCE!r} is not registered")]
        with pytest.raises(DeviceError, match="is not registered"):
            await client.reserve(["d1"])


async def test_a_plugin_gone_past_the_grace_period_is_deregistered(plugin_dir: Path) -> None:
    """A resource whose stream ended and that does not register again within stop_grace_period is deregistered."""
    plugin = ScriptedPlugin()
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry, stop_grace_period=0.05) as server,
        serve_plugin(plugin, plugin_dir / "widget.sock"),
        registry.subscribe(PLUGIN_TYPE_DEVICE) as events,
    ):
        await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
        plugin.end_streams()
        with anyio.fail_after(WAIT):
            assert (await anext(events)).event_type is EventType.REGISTERED
            event = await anext(events)
        assert (event.event_type, event.info.name) == (EventType.DEREGISTERED, RESOURCE)
        assert server.resource_names() == []


async def test_leaving_deregisters_the_plugins_and_a_new_server_forgets_stale_ones(plugin_dir: Path) -> None:
    """Leaving deregisters what the server registered; a new server also drops registrations a crash left behind."""
    plugin = ScriptedPlugin()
    async with Registry() as registry:
        async with (
            KubeletRegistrationServer(plugin_dir, registry) as server,
            serve_plugin(plugin, plugin_dir / "widget.sock"),
        ):
            await register(server.socket_path, endpoint="widget.sock", resource_name=RESOURCE)
            assert len(await registry.list_plugins(PLUGIN_TYPE_DEVICE)) == 1
        assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []
        # What a crashed server would have left: a kubelet registration in this directory, and one elsewhere.
        for name, directory in (("example.com/left", plugin_dir), ("example.com/elsewhere", Path("/run/other"))):
            await registry.register_plugin(
                PluginInfo(
                    name=name,
                    type=PLUGIN_TYPE_DEVICE,
                    alloc_id=KUBELET_ALLOC_ID,
                    connection_info=PluginConnectionInfo(socket_path=str(directory.absolute() / "x.sock")),
                    options={"protocol": KUBELET_PROTOCOL},
                )
            )
        async with KubeletRegistrationServer(plugin_dir, registry):
            assert [i.name for i in await registry.list_plugins(PLUGIN_TYPE_DEVICE)] == ["example.com/elsewhere"]


async def test_remove_plugin_sockets_cleans_the_directory_as_kubelet_does(plugin_dir: Path) -> None:
    """With remove_plugin_sockets, sockets left in the directory are removed on start; other files stay."""
    plugin_dir.mkdir()
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(plugin_dir / "old-plugin.sock"))
    leftover.close()
    (plugin_dir / "kubelet_internal_checkpoint").write_text("{}")
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry, remove_plugin_sockets=True),
    ):
        assert sorted(p.name for p in plugin_dir.iterdir()) == ["kubelet.sock", "kubelet_internal_checkpoint"]


class _GarblingPlugin(ScriptedPlugin):
    """Sends one good list, then a message that is not a valid ListAndWatchResponse (invalid UTF-8 in an id)."""

    async def list_and_watch(self, empty: wire.Empty) -> AsyncIterator[wire.ListAndWatchResponse]:
        self.stream_opened.set()
        yield wire.ListAndWatchResponse(devices=list(self.devices))
        await self._changed.wait()
        yield EncodedListAndWatchResponse(b"\x0a\x03\x0a\x01\xff")
        await anyio.sleep_forever()


async def test_a_malformed_list_and_watch_message_fails_the_stream_not_the_server(plugin_dir: Path) -> None:
    """A plugin sending bytes that do not decode marks its devices unhealthy; the server keeps serving others."""
    garbling, good = _GarblingPlugin(), ScriptedPlugin()
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(garbling, plugin_dir / "bad.sock"),
        serve_plugin(good, plugin_dir / "good.sock"),
    ):
        info = PluginInfo(name=RESOURCE, type=PLUGIN_TYPE_DEVICE, options={"protocol": KUBELET_PROTOCOL})
        stream = server.dispense(info).fingerprint()
        await register(server.socket_path, endpoint="bad.sock", resource_name=RESOURCE)
        assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
        garbling.set_devices(wire_devices(["d1"]))
        group = await _next_group(stream)
        assert _health(group) == {"d1": False, "d2": False}
        assert "ListAndWatch stream failed" in group.devices[0].health_description
        assert "not a valid ListAndWatchResponse" in group.devices[0].health_description
        # The server still works: the same resource registers again from a well-behaved plugin.
        await register(server.socket_path, endpoint="good.sock", resource_name=RESOURCE)
        assert _health(await _next_group(stream)) == {"d1": True, "d2": True}
        await stream.aclose()
