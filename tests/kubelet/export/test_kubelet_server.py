"""DeviceTypeServer against the fake kubelet: registration, ListAndWatch, Allocate (default, hooks, CDI), errors,
sockets and shutdown. Real grpclib servers and clients on Unix sockets; only kubelet is a fake."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality
from helpers.kubelet import RESOURCE, WAIT, cdi_gpu, kubelet_and_server, serving

from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import ConfigError, InvalidPluginError, PluginRPCError, SocketInUseError
from plugin_host.kubelet import (
    USE_DEFAULT,
    AllocateRequest,
    AllocateResponse,
    CdiDevice,
    CdiSpec,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    ContainerPreferredAllocationResponse,
    DeviceInfo,
    DevicePluginOptions,
    DeviceTypeServer,
    KubeletDevice,
    KubeletDeviceSpec,
    KubeletMount,
    PreferredAllocationRequest,
    PreferredAllocationResponse,
    PreStartContainerRequest,
    UseDefault,
)
from plugin_host.kubelet import _convert as convert
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio


def _stub(path: Path) -> tuple[Channel, wire.DevicePluginStub]:
    channel = Channel(path=str(path))
    return channel, wire.DevicePluginStub(channel)


# --- registration and ListAndWatch --------------------------------------------------------------------------------


async def test_registers_after_serving_and_lists_every_device(short_tmp: Path) -> None:
    """Register carries v1beta1, the socket name and <namespace>/<type>; kubelet then sees every device and health."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        request = kubelet.registrations[0]
        assert (request.version, request.endpoint, request.resource_name) == (
            "v1beta1",
            "example.com-gpu.sock",
            RESOURCE,
        )
        assert server.socket_path == short_tmp / "example.com-gpu.sock"
        assert {d.id: d.health for d in kubelet.devices(RESOURCE).values()} == {
            "g0": "Healthy",
            "g1": "Healthy",
            "sick": "Unhealthy",
        }
        assert server.registrations == 1


async def test_update_sends_the_full_new_list(short_tmp: Path) -> None:
    """After update(), kubelet's view is exactly the new list (full replace), with NUMA topology."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        server.update({"g9": DeviceInfo(topology=(0, 1))})
        with anyio.fail_after(WAIT):
            devices = await kubelet.wait_for_devices(RESOURCE, lambda d: set(d) == {"g9"})
        assert devices["g9"].topology == (0, 1)


@pytest.mark.parametrize(
    ("devices", "problem"),
    [
        ({"": DeviceInfo()}, "must be a non-empty string"),
        ({"g\udc80": DeviceInfo()}, "encodes to UTF-8"),
        ({"g5": {"state": "Healthy"}}, "info must be a DeviceInfo, got dict"),
        (
            {"g5": DeviceInfo(cdi_spec=CdiSpec(kind="example.com/gpu", devices=(CdiDevice(name="g5"),)))},
            "no container_edits",
        ),
    ],
    ids=["empty id", "lone surrogate", "not a DeviceInfo", "bad CDI spec"],
)
async def test_update_checks_devices_as_add_device_does(short_tmp: Path, devices: dict[str, Any], problem: str) -> None:
    """Bad input: update() refuses what add_device refuses (InvalidPluginError naming it) and keeps serving the last
    list, instead of breaking every ListAndWatch message later."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        with pytest.raises(InvalidPluginError, match=problem) as caught:
            server.update(devices)
        assert "of type 'gpu'" in str(caught.value)
        server.update({"g9": DeviceInfo()})
        with anyio.fail_after(WAIT):
            assert await kubelet.wait_for_devices(RESOURCE, lambda devs: "g9" in devs) == {
                "g9": KubeletDevice(id="g9", health="Healthy")
            }


async def test_several_list_and_watch_streams_each_get_every_update(short_tmp: Path) -> None:
    """Concurrent ListAndWatch streams each get the list at once and after every change, and end cleanly at stop."""
    async with kubelet_and_server(short_tmp) as (_, server):
        received: list[list[list[str]]] = [[], [], []]
        first_seen = [anyio.Event() for _ in received]
        second_seen = [anyio.Event() for _ in received]

        async def watch(index: int) -> None:
            channel, _ = _stub(server.socket_path)
            try:
                async with channel.request(
                    f"{convert.DEVICE_PLUGIN_SERVICE}/ListAndWatch",
                    Cardinality.UNARY_STREAM,
                    wire.Empty,
                    wire.ListAndWatchResponse,
                ) as stream:
                    await stream.send_message(wire.Empty(), end=True)
                    async for message in stream:
                        received[index].append([d.id for d in message.devices])
                        (first_seen if len(received[index]) == 1 else second_seen)[index].set()
            finally:
                channel.close()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for index in range(len(received)):
                    tg.start_soon(watch, index)
                for event in first_seen:
                    await event.wait()
                server.update({"only": DeviceInfo()})
                for event in second_seen:
                    await event.wait()
                await server.stop()  # every stream must end without an error for the task group to exit
        assert received == [[["g0", "g1", "sick"], ["only"]]] * 3


async def test_register_is_retried_with_backoff_until_kubelet_appears(short_tmp: Path) -> None:
    """With no kubelet yet, the server keeps serving and registers as soon as kubelet starts."""
    async with serving(short_tmp, register_backoff_initial=0.01, register_backoff_max=0.05) as server:
        assert server.registrations == 0
        async with FakeKubelet(short_tmp) as kubelet:
            with anyio.fail_after(WAIT):
                await server.wait_registered()
                await kubelet.wait_for_devices(RESOURCE)


async def test_kubelet_restart_re_creates_the_socket_and_re_registers(short_tmp: Path) -> None:
    """kubelet deletes our socket and re-creates kubelet.sock: we serve again and register again within 1 s."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        await kubelet.restart()
        assert not server.socket_path.exists()  # kubelet's start removed it
        with anyio.fail_after(1.0):
            await kubelet.wait_for_registration(RESOURCE, 2)
            await kubelet.wait_for_devices(RESOURCE, lambda d: d["g0"].health == "Healthy")
        assert stat.S_ISSOCK(server.socket_path.stat().st_mode)
        assert server.registrations == 2


async def test_new_kubelet_socket_alone_triggers_re_registration(short_tmp: Path) -> None:
    """A kubelet.sock re-created while our socket survives (another inode) is registered with again, same socket."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        kept = server.socket_path.stat().st_ino
        await kubelet.restart(clean=False)
        with anyio.fail_after(1.0):
            await kubelet.wait_for_registration(RESOURCE, 2)
            await kubelet.wait_for_devices(RESOURCE, lambda d: d["g0"].health == "Healthy")
        assert server.socket_path.stat().st_ino == kept


# --- Allocate -----------------------------------------------------------------------------------------------------


async def test_allocate_merges_nodes_mounts_envs_and_annotations(short_tmp: Path) -> None:
    """The default Allocate merges every device's nodes, mounts (shared ones once), envs and annotations."""
    async with kubelet_and_server(short_tmp) as (kubelet, _):
        response = await kubelet.allocate(RESOURCE, ["g0", "g1"])
    assert response == ContainerAllocateResponse(
        envs={"GPU0": "on", "GPU1": "on"},
        mounts=(KubeletMount(container_path="/usr/lib/gpu", host_path="/opt/gpu/lib", read_only=True),),
        devices=(
            KubeletDeviceSpec(container_path="/dev/gpu0", host_path="/dev/gpu0"),
            KubeletDeviceSpec(container_path="/dev/gpu1", host_path="/dev/gpu1"),
        ),
        annotations={"gpu0": "yes", "gpu1": "yes"},
    )


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(AllocateRequest(), "no container requests", id="zero-container-requests"),
        pytest.param(
            AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=("g0", "nope")),)),
            "device 'nope', which does not exist",
            id="unknown-id",
        ),
        pytest.param(
            AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=("sick",)),)),
            "device 'sick', which is Unhealthy, expected Healthy",
            id="unhealthy-device",
        ),
    ],
)
async def test_allocate_refuses_bad_requests_with_invalid_argument(
    short_tmp: Path, request_: AllocateRequest, expected: str
) -> None:
    """Bad input: zero container requests, an unknown id or an unhealthy device → INVALID_ARGUMENT naming it."""
    async with kubelet_and_server(short_tmp) as (kubelet, _):
        with pytest.raises(PluginRPCError) as caught:
            await kubelet.raw_allocate(RESOURCE, request_)
    assert caught.value.code == "INVALID_ARGUMENT"
    assert expected in str(caught.value)
    assert RESOURCE in str(caught.value)


async def test_allocate_writes_the_cdi_spec_and_returns_its_qualified_name(short_tmp: Path) -> None:
    """The CDI spec lands in the CDI dir as <vendor>-<class>-<device>.yaml, mode 0644, with the spec's content."""
    cdi_dir = short_tmp / "cdi"
    async with kubelet_and_server(short_tmp, {"g0": cdi_gpu(0, "card0")}, cdi_dir=cdi_dir) as (kubelet, _):
        response = await kubelet.allocate(RESOURCE, ["g0"])
    assert response.cdi_devices == ("example.com/gpu=card0",)
    path = cdi_dir / "example.com-gpu-card0.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == {
        "cdiVersion": "0.5.0",
        "kind": "example.com/gpu",
        "devices": [{"name": "card0", "containerEdits": {"env": ["CDI_CARD0=1"]}}],
    }


async def test_a_shared_cdi_spec_is_written_once_and_named_once(short_tmp: Path) -> None:
    """Two devices sharing one CDI device give one file and one name; an existing file is not rewritten."""
    cdi_dir = short_tmp / "cdi"
    devices = {"g0": cdi_gpu(0, "shared"), "g1": cdi_gpu(1, "shared"), "g2": cdi_gpu(2, "own")}
    async with kubelet_and_server(short_tmp, devices, cdi_dir=cdi_dir) as (kubelet, _):
        response = await kubelet.allocate(RESOURCE, ["g0", "g1"])
        assert response.cdi_devices == ("example.com/gpu=shared",)
        assert sorted(p.name for p in cdi_dir.iterdir()) == ["example.com-gpu-shared.yaml"]
        (cdi_dir / "example.com-gpu-shared.yaml").write_text("edited by someone")
        await kubelet.allocate(RESOURCE, ["g1", "g2"])
    assert (cdi_dir / "example.com-gpu-shared.yaml").read_text() == "edited by someone"
    assert sorted(p.name for p in cdi_dir.iterdir()) == ["example.com-gpu-own.yaml", "example.com-gpu-shared.yaml"]


async def test_an_unwritable_cdi_dir_fails_the_call(short_tmp: Path) -> None:
    """When the CDI spec cannot be written, Allocate fails naming the file instead of returning a broken device."""
    blocker = short_tmp / "not-a-dir"
    blocker.write_text("")
    async with kubelet_and_server(short_tmp, {"g0": cdi_gpu(0, "card0")}, cdi_dir=blocker) as (kubelet, _):
        with pytest.raises(PluginRPCError, match=r"example\.com-gpu-card0\.yaml") as caught:
            await kubelet.allocate(RESOURCE, ["g0"])
    assert caught.value.code == "INTERNAL"


class _Hooks:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def allocate(self, request: AllocateRequest) -> AllocateResponse | UseDefault:
        self.calls.append("allocate")
        ids = request.container_requests[0].devices_ids
        if ids == ("g1",):
            return USE_DEFAULT
        return AllocateResponse(container_responses=(ContainerAllocateResponse(envs={"CUSTOM": ",".join(ids)}),))

    def post_allocate(self, response: AllocateResponse) -> AllocateResponse | None:
        self.calls.append("post_allocate")
        container = response.container_responses[0]
        if "GPU1" in container.envs:
            return None  # keep it as it is
        annotated = container.model_copy(update={"annotations": {"post": "yes"}})
        return AllocateResponse(container_responses=(annotated,))


async def test_a_custom_allocate_is_passed_through_and_use_default_falls_back(short_tmp: Path) -> None:
    """The scanner's allocate answers (post_allocate may replace it); USE_DEFAULT runs the default Allocate."""
    hooks = _Hooks()
    async with kubelet_and_server(short_tmp, hooks=hooks) as (kubelet, _):
        custom = await kubelet.allocate(RESOURCE, ["g0"])
        default = await kubelet.allocate(RESOURCE, ["g1"])
    assert custom == ContainerAllocateResponse(envs={"CUSTOM": "g0"}, annotations={"post": "yes"})
    assert default.envs == {"GPU1": "on"}
    assert default.devices == (KubeletDeviceSpec(container_path="/dev/gpu1", host_path="/dev/gpu1"),)
    assert hooks.calls == ["allocate", "post_allocate"] * 2


class _FailingPostAllocate:
    def post_allocate(self, response: AllocateResponse) -> None:
        raise RuntimeError("annotating failed")


async def test_a_failing_post_allocate_fails_the_call(short_tmp: Path) -> None:
    """An exception in post_allocate fails Allocate with its message."""
    async with kubelet_and_server(short_tmp, hooks=_FailingPostAllocate()) as (kubelet, _):
        with pytest.raises(PluginRPCError, match="annotating failed") as caught:
            await kubelet.allocate(RESOURCE, ["g0"])
    assert caught.value.code == "UNKNOWN"


class _WrongAllocate:
    def allocate(self, request: AllocateRequest) -> Any:
        return {"container_responses": []}


async def test_an_allocate_hook_returning_the_wrong_type_is_an_internal_error(short_tmp: Path) -> None:
    """A hook that returns something else than an AllocateResponse (or USE_DEFAULT) fails the call, naming it."""
    async with kubelet_and_server(short_tmp, hooks=_WrongAllocate()) as (kubelet, _):
        with pytest.raises(PluginRPCError, match="returned dict, expected AllocateResponse"):
            await kubelet.allocate(RESOURCE, ["g0"])


# --- optional calls and options -----------------------------------------------------------------------------------


class _AllHooks:
    def __init__(self) -> None:
        self.pre_started: list[tuple[str, ...]] = []

    def get_preferred_allocation(self, request: PreferredAllocationRequest) -> PreferredAllocationResponse:
        container = request.container_requests[0]
        chosen = container.available_device_ids[-container.allocation_size :]
        return PreferredAllocationResponse(
            container_responses=(ContainerPreferredAllocationResponse(device_ids=chosen),)
        )

    async def pre_start_container(self, request: PreStartContainerRequest) -> None:
        self.pre_started.append(request.devices_ids)


async def test_options_and_optional_calls_follow_the_hooks(short_tmp: Path) -> None:
    """With the hooks, options advertise them (in Register and GetDevicePluginOptions) and the calls reach them."""
    hooks = _AllHooks()
    async with kubelet_and_server(short_tmp, hooks=hooks) as (kubelet, _):
        expected = DevicePluginOptions(pre_start_required=True, get_preferred_allocation_available=True)
        assert kubelet.registrations[0].options == expected
        assert kubelet.options(RESOURCE) == expected
        preferred = await kubelet.get_preferred_allocation(RESOURCE, ["g0", "g1"], size=1)
        await kubelet.pre_start_container(RESOURCE, ["g1"])
    assert preferred.container_responses[0].device_ids == ("g1",)
    assert hooks.pre_started == [("g1",)]


async def test_optional_calls_without_hooks_answer_unimplemented(short_tmp: Path) -> None:
    """Without hooks, options are all false and PreStartContainer / GetPreferredAllocation answer an error status."""
    async with kubelet_and_server(short_tmp) as (kubelet, _):
        assert kubelet.options(RESOURCE) == DevicePluginOptions()
        with pytest.raises(PluginRPCError, match="no pre_start_container hook") as pre_start:
            await kubelet.pre_start_container(RESOURCE, ["g0"], force=True)
        with pytest.raises(PluginRPCError, match="no get_preferred_allocation hook") as preferred:
            await kubelet.get_preferred_allocation(RESOURCE, ["g0"], force=True)
    assert pre_start.value.code == preferred.value.code == "UNIMPLEMENTED"


# --- sockets and shutdown -----------------------------------------------------------------------------------------


async def test_a_socket_served_by_a_live_process_is_refused(short_tmp: Path) -> None:
    """Bad input: our socket path already served by someone alive → SocketInUseError saying so; it is left alone."""
    path = short_tmp / "example.com-gpu.sock"
    async with await anyio.create_unix_listener(path):
        with pytest.raises(SocketInUseError, match="is already in use") as caught:
            async with serving(short_tmp):
                pass
        assert "example.com/gpu" in str(caught.value)
        assert stat.S_ISSOCK(path.stat().st_mode)


async def test_a_stale_socket_is_replaced(short_tmp: Path) -> None:
    """A socket file nobody serves (a crashed plugin's) is replaced, and kubelet reaches the new server."""
    path = short_tmp / "example.com-gpu.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(path))
    stale.close()
    async with kubelet_and_server(short_tmp) as (kubelet, _):
        assert kubelet.registration_count(RESOURCE) == 1


async def test_stop_removes_the_socket_and_is_idempotent(short_tmp: Path) -> None:
    """stop() ends the streams and removes the socket file; a second stop and a later update do not raise."""
    async with kubelet_and_server(short_tmp) as (kubelet, server):
        await server.stop()
        assert not server.socket_path.exists()
        with anyio.fail_after(WAIT):
            await kubelet.wait_until(lambda: not kubelet.connected(RESOURCE))
        await server.stop()
        server.update({"x": DeviceInfo()})
    assert not server.socket_path.exists()


async def test_a_list_and_watch_stream_ends_with_ok_at_stop(short_tmp: Path) -> None:
    """At stop, an open ListAndWatch stream ends with status OK (not a cancellation)."""
    async with kubelet_and_server(short_tmp) as (_, server):
        channel, stub = _stub(server.socket_path)
        try:
            with anyio.fail_after(WAIT):
                messages = []
                async for message in stub.list_and_watch(wire.Empty()):
                    messages.append(message)
                    await server.stop()
        finally:
            channel.close()
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "Example.com"}, "kubelet namespace 'Example.com' is invalid"),
        ({"namespace": "kubernetes.io"}, "reserved for Kubernetes"),
        ({"dev_type": "a/b"}, "device type 'a/b' is invalid"),
        ({"register_timeout": 0}, "register_timeout must be a positive"),
        ({"watch_interval": -1}, "watch_interval must be a positive"),
        ({"register_backoff_initial": 2, "register_backoff_max": 1}, "backoff_max must be at least"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    """Bad input: an invalid namespace, type, timeout, interval or backoff is a ConfigError naming it."""
    arguments: dict[str, Any] = {"namespace": "example.com", "dev_type": "gpu"}
    arguments.update(kwargs)
    namespace = arguments.pop("namespace")
    dev_type = arguments.pop("dev_type")
    with pytest.raises(ConfigError, match=message):
        DeviceTypeServer(namespace, dev_type, **arguments)


async def test_a_missing_plugin_dir_is_created_and_kubelet_found_later(short_tmp: Path) -> None:
    """A plugin started before kubelet created its directory serves there anyway and registers once kubelet runs."""
    plugin_dir = short_tmp / "device-plugins"
    async with serving(plugin_dir, register_backoff_initial=0.01, register_backoff_max=0.05) as server:
        assert stat.S_ISSOCK(server.socket_path.stat().st_mode)
        async with FakeKubelet(plugin_dir, clean_on_start=False) as kubelet:
            with anyio.fail_after(WAIT):
                await kubelet.wait_for_devices(RESOURCE)
