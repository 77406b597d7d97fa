"""Helpers of the CSI supervision tests: the example hostpath plugin (in-process or as a process), and a registrar.

The registrar is what Kubernetes' node-driver-registrar is to a kubelet: a real grpclib server on a Unix socket
serving ``pluginregistration.Registration`` with a fixed ``GetInfo`` answer, recording every status it is told.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import Process
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from plugin_host._proto import pluginregistration as wire
from plugin_host._proto.csi import v1 as csi_wire
from plugin_host.csi import CsiPluginServer
from plugin_host.plugins.csi_hostpath.hostpath import HostpathPlugin

HOSTPATH_NAME = "hostpath.csi.plugin-host.dev"
HOSTPATH_MODULE = "plugin_host.plugins.csi_hostpath"


class Registrar(wire.RegistrationBase):  # type: ignore[misc]  # generated code is not type-checked
    """Answers GetInfo with ``info``; records every NotifyRegistrationStatus."""

    def __init__(self, info: wire.PluginInfo) -> None:
        self.info = info
        self.get_info_calls = 0
        self.statuses: list[wire.RegistrationStatus] = []
        self._changed = anyio.Event()

    async def get_info(self, info_request: wire.InfoRequest) -> wire.PluginInfo:
        self.get_info_calls += 1
        return self.info

    async def notify_registration_status(
        self, registration_status: wire.RegistrationStatus
    ) -> wire.RegistrationStatusResponse:
        self.statuses.append(registration_status)
        self._changed.set()
        self._changed = anyio.Event()
        return wire.RegistrationStatusResponse()

    async def status(self, count: int = 1) -> wire.RegistrationStatus:
        """The ``count``-th status the watcher sent, waiting for it (bound with anyio.fail_after)."""
        while len(self.statuses) < count:
            await self._changed.wait()
        return self.statuses[count - 1]


def csi_info(
    name: str = "hostpath.csi.example.com",
    endpoint: str = "/run/csi/hostpath.sock",
    versions: tuple[str, ...] = ("1.0.0",),
    ptype: str = "CSIPlugin",
) -> wire.PluginInfo:
    """A GetInfo answer; valid unless told otherwise."""
    return wire.PluginInfo(type=ptype, name=name, endpoint=endpoint, supported_versions=list(versions))


@asynccontextmanager
async def serve_registrar(path: Path, info: wire.PluginInfo) -> AsyncIterator[Registrar]:
    """Serve a :class:`Registrar` on ``path`` until the block ends; the socket file is removed afterwards."""
    registrar = Registrar(info)
    server = Server([registrar])
    await server.start(path=os.fspath(path))
    try:
        yield registrar
    finally:
        server.close()
        await server.wait_closed()
        path.unlink(missing_ok=True)


@asynccontextmanager
async def serve_garbage(path: Path) -> AsyncIterator[None]:
    """A Unix socket whose server answers every connection with bytes that are not HTTP/2, then hangs up."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"this is not HTTP/2\r\n\r\n" * 8)

    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, answer)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
    path.unlink(missing_ok=True)


def bind_silent_socket(path: Path) -> socket.socket:
    """A bound Unix socket that never listens: connecting to it is refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.fspath(path))
    return sock


@asynccontextmanager
async def serve_hostpath(socket_path: Path, *, name: str = HOSTPATH_NAME) -> AsyncIterator[HostpathPlugin]:
    """Serve the reference hostpath CSI plugin in-process on ``socket_path`` (its volumes next to the socket)."""
    plugin = HostpathPlugin(socket_path.with_suffix(".data"), name=name, node_id="node-1", max_volumes_per_node=8)
    async with CsiPluginServer(plugin, socket_path):
        yield plugin


@asynccontextmanager
async def run_hostpath_process(socket_path: Path, *, name: str = HOSTPATH_NAME) -> AsyncIterator[Process]:
    """Run the reference hostpath CSI plugin as its own process; returns once it serves. Killed (SIGKILL) at the end."""
    command = [
        sys.executable,
        "-m",
        HOSTPATH_MODULE,
        "--socket",
        os.fspath(socket_path),
        "--data-dir",
        os.fspath(socket_path.with_suffix(".data")),
        "--name",
        name,
        "--node-id",
        "node-1",
    ]
    process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stderr=None)
    try:
        assert process.stdout is not None
        received = b""
        with anyio.fail_after(30):
            async for chunk in process.stdout:
                received += chunk
                if b"\n" in received:
                    break
        assert received.startswith(b"serving "), received
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()


class EchoingForeignPlugin:
    """A CSI controller not built on plugin_host (as a Go plugin would be): its DeleteVolume fails with a status
    that quotes the secrets it was sent, so they travel back in ``grpc-message``, percent-encoded."""

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/csi.v1.Controller/DeleteVolume": Handler(
                self._delete_volume,
                Cardinality.UNARY_UNARY,
                csi_wire.DeleteVolumeRequest,
                csi_wire.DeleteVolumeResponse,
            )
        }

    async def _delete_volume(self, stream: Stream[csi_wire.DeleteVolumeRequest, csi_wire.DeleteVolumeResponse]) -> None:
        request = await stream.recv_message()
        assert request is not None
        raise GRPCError(Status.PERMISSION_DENIED, f"credentials {dict(request.secrets)} rejected")


@asynccontextmanager
async def serve_echoing_foreign_plugin(path: Path) -> AsyncIterator[None]:
    """Serve an :class:`EchoingForeignPlugin` on ``path`` until the block ends."""
    server = Server([EchoingForeignPlugin()])
    await server.start(path=os.fspath(path))
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
