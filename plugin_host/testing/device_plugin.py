"""A scripted Kubernetes device plugin (the v1beta1 ``DevicePlugin`` service) for testing a kubelet-side host.

It serves a real grpclib server on a Unix socket, answers from what the test scripted, and records every call, so
a test of something that acts as a kubelet (:class:`~plugin_host.kubelet.KubeletRegistrationServer`, or your own)
can drive a plugin precisely::

    plugin = ScriptedPlugin()
    async with serve_plugin(plugin, plugin_dir / "gpu.sock"):
        await register(plugin_dir / "kubelet.sock", endpoint="gpu.sock", resource_name="example.com/gpu")
        plugin.set_devices(wire_devices(healthy=["gpu0"], unhealthy=["gpu1"]))

:func:`register` sends a Register to a kubelet registration socket as a plugin would.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from plugin_host._proto import v1beta1 as wire

__all__ = ["ScriptedPlugin", "register", "serve_plugin", "wire_devices"]


def wire_devices(healthy: Sequence[str] = (), unhealthy: Sequence[str] = ()) -> list[wire.Device]:
    """ListAndWatch devices: the healthy ones, then the unhealthy ones."""
    return [wire.Device(id=i, health="Healthy") for i in healthy] + [
        wire.Device(id=i, health="Unhealthy") for i in unhealthy
    ]


class ScriptedPlugin(wire.DevicePluginBase):  # type: ignore[misc]  # generated code is not type-checked
    """Answers GetDevicePluginOptions, ListAndWatch, Allocate and PreStartContainer from its attributes.

    Script it through its attributes: ``options`` (or ``options_error``) answer GetDevicePluginOptions, ``devices``
    is the list every ListAndWatch stream sends (change it with :meth:`set_devices`), ``allocate_reply`` (or
    ``allocate_error``) answers Allocate; by default each container gets the env ``IDS=<its ids>``. It records
    ``options_calls``, ``allocations`` (per call, per container, the ids), ``pre_starts`` and ``streams_open``;
    ``stream_opened`` and ``stream_closed`` are set when a stream opened or closed.
    """

    def __init__(self, options: wire.DevicePluginOptions | None = None) -> None:
        self.options = options or wire.DevicePluginOptions()
        self.options_error: GRPCError | None = None
        self.devices: list[wire.Device] = wire_devices(["d1", "d2"])
        self.allocate_reply: wire.AllocateResponse | None = None
        self.allocate_error: GRPCError | None = None
        self.options_calls = 0
        self.allocations: list[list[list[str]]] = []
        self.pre_starts: list[list[str]] = []
        self.streams_open = 0
        self.stream_opened = anyio.Event()
        self.stream_closed = anyio.Event()
        self._changed = anyio.Event()
        self._end = anyio.Event()

    def set_devices(self, devices: list[wire.Device]) -> None:
        """Send a new full device list on every open stream."""
        self.devices = devices
        self._changed.set()
        self._changed = anyio.Event()

    def end_streams(self) -> None:
        """Make every open ListAndWatch stream (and later ones) end cleanly."""
        self._end.set()
        self._changed.set()

    async def get_device_plugin_options(self, empty: wire.Empty) -> wire.DevicePluginOptions:
        """``options``, or raises ``options_error``."""
        self.options_calls += 1
        if self.options_error is not None:
            raise self.options_error
        return self.options

    async def list_and_watch(self, empty: wire.Empty) -> AsyncIterator[wire.ListAndWatchResponse]:
        """``devices`` at once and after every :meth:`set_devices`, until :meth:`end_streams`."""
        self.streams_open += 1
        self.stream_opened.set()
        try:
            while not self._end.is_set():
                changed = self._changed
                yield wire.ListAndWatchResponse(devices=list(self.devices))
                await changed.wait()
        finally:
            self.streams_open -= 1
            self.stream_closed.set()

    async def allocate(self, allocate_request: wire.AllocateRequest) -> wire.AllocateResponse:
        """Records the call; ``allocate_reply``, ``allocate_error``, or ``IDS=<ids>`` per container."""
        self.allocations.append([list(c.devices_ids) for c in allocate_request.container_requests])
        if self.allocate_error is not None:
            raise self.allocate_error
        if self.allocate_reply is not None:
            return self.allocate_reply
        return wire.AllocateResponse(
            container_responses=[
                wire.ContainerAllocateResponse(envs={"IDS": ",".join(c.devices_ids)})
                for c in allocate_request.container_requests
            ]
        )

    async def pre_start_container(
        self, pre_start_container_request: wire.PreStartContainerRequest
    ) -> wire.PreStartContainerResponse:
        """Records the call's device ids."""
        self.pre_starts.append(list(pre_start_container_request.devices_ids))
        return wire.PreStartContainerResponse()

    async def get_preferred_allocation(
        self, preferred_allocation_request: wire.PreferredAllocationRequest
    ) -> wire.PreferredAllocationResponse:
        """Not scripted: UNIMPLEMENTED."""
        raise GRPCError(Status.UNIMPLEMENTED, "no preferred allocation")


@asynccontextmanager
async def serve_plugin(plugin: ScriptedPlugin, path: Path) -> AsyncIterator[Server]:
    """Serve ``plugin`` on ``path`` for the block; the socket file is removed afterwards."""
    server = Server([plugin])
    await server.start(path=os.fspath(path))
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
        await anyio.Path(path).unlink(missing_ok=True)


async def register(kubelet_socket: Path, *, endpoint: str, resource_name: str, version: str = "v1beta1") -> None:
    """Send Register as a device plugin does; a refusal raises :class:`GRPCError` with kubelet's message."""
    channel = Channel(path=os.fspath(kubelet_socket))
    try:
        stub = wire.RegistrationStub(channel)
        await stub.register(
            wire.RegisterRequest(version=version, endpoint=endpoint, resource_name=resource_name), timeout=10
        )
    finally:
        channel.close()
