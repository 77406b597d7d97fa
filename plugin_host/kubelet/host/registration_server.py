"""Act as a kubelet for Kubernetes device plugins: serve ``v1beta1.Registration`` on ``<plugin_dir>/kubelet.sock``.

A plugin registers as it would with kubelet (``pkg/kubelet/cm/devicemanager``): the request is checked the way
kubelet checks it, with kubelet's error texts; the plugin is dialled back on ``<plugin_dir>/<endpoint>`` and asked
for its options *before* Register is answered; then its ListAndWatch stream is consumed for as long as it lasts.
Each resource is registered in the :class:`~plugin_host.registry.Registry` as a ``device`` plugin:

- name: the resource name (``<domain>/<resource>``); alloc id :data:`KUBELET_ALLOC_ID` (``"kubelet"``);
- ``connection_info.socket_path``: the plugin's socket, ``<plugin_dir>/<endpoint>``;
- ``options``: ``protocol`` = :data:`KUBELET_PROTOCOL`, ``api_version``, ``resource_name``, ``endpoint``,
  ``pre_start_required`` and ``get_preferred_allocation_available`` (``"true"``/``"false"``).

:func:`is_kubelet_plugin` tells such a registration apart; :meth:`KubeletRegistrationServer.dispense` turns it into a
:class:`~plugin_host.kubelet.host._hosted.KubeletDevicePluginClient`.

As in kubelet, a stream that ends turns every device of the resource unhealthy while the registration stays; a new
Register for the resource replaces the connection and its first ListAndWatch message restores the devices. After
``stop_grace_period`` seconds without a new registration (kubelet waits 5 minutes) the resource is deregistered.
Kubelet deletes every socket in its directory when it starts, which tells plugins that watch their own socket to
serve and register again. By default the server leaves other processes' files alone (plugins that watch
``kubelet.sock`` being created, as the framework and most Kubernetes plugins do, register without it); with
``remove_plugin_sockets=True`` it removes the sockets in ``plugin_dir`` on start, as kubelet does.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from socket import socket as Socket
from typing import Any

import anyio
from anyio.abc import TaskGroup
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import grpc_errors, map_exceptions, unary_call
from plugin_host._grpc_server import ClosingServer, stop_server
from plugin_host._offload import cpu_bound
from plugin_host._proto import v1beta1 as wire
from plugin_host._service import TaskGroupService
from plugin_host._sockets import bind_unix_socket, claim_socket_path, remove_socket_if_ours
from plugin_host._text import clipped
from plugin_host.device import DeviceManager
from plugin_host.errors import ConfigError, PluginHostError, PluginNotFoundError, PluginUnavailableError
from plugin_host.kubelet._convert import DEVICE_PLUGIN_SERVICE, REGISTRATION_SERVICE
from plugin_host.kubelet.api import KUBELET_SOCKET_NAME
from plugin_host.kubelet.host import _hosted_convert as convert
from plugin_host.kubelet.host._hosted import HostedResource, KubeletDevicePluginClient, PluginConnection, prepare_update
from plugin_host.kubelet.host._list_decode import RawListAndWatchResponse
from plugin_host.kubelet.host._register_checks import (
    KUBELET_API_VERSION,
    endpoint_error,
    oversized_field_error,
    resource_name_error,
    version_error,
)
from plugin_host.kubelet.host._reply_decode import strict_reply
from plugin_host.registry import PLUGIN_TYPE_DEVICE, PluginConnectionInfo, PluginInfo, Registry

__all__ = [
    "KUBELET_ALLOC_ID",
    "KUBELET_PROTOCOL",
    "KubeletRegistrationServer",
    "is_kubelet_plugin",
]

logger = logging.getLogger(__name__)

KUBELET_ALLOC_ID = "kubelet"
"""Alloc id of the registrations the server makes: the plugins joined through the kubelet registration socket."""
KUBELET_PROTOCOL = "kubelet-device-plugin"
"""``options["protocol"]`` of those registrations."""

_CLOSE_TIMEOUT = 5.0


def is_kubelet_plugin(info: PluginInfo) -> bool:
    """Whether a ``device`` registration is a Kubernetes device plugin joined through a kubelet registration socket."""
    return info.options.get("protocol") == KUBELET_PROTOCOL


def _flag(value: bool) -> str:
    return "true" if value else "false"


class KubeletRegistrationServer(TaskGroupService):
    """Serve kubelet's device plugin registration on ``<plugin_dir>/kubelet.sock`` for an ``async with`` block.

    ``dial_timeout`` bounds dialling a registering plugin and its GetDevicePluginOptions answer (kubelet: 10 s);
    ``call_timeout`` bounds Allocate from dispensed clients; ``stop_grace_period`` is how long a resource whose
    stream ended stays registered (unhealthy) waiting for the plugin to register again; ``remove_plugin_sockets``
    deletes the sockets found in ``plugin_dir`` on start, as kubelet does (see the module docstring). With
    ``devices``, each resource is also managed by that :class:`~plugin_host.device.DeviceManager` (named after the
    resource) while it is registered, so its devices show in snapshots and ``reserve()`` routes to it.
    """

    def __init__(
        self,
        plugin_dir: str | os.PathLike[str],
        registry: Registry,
        *,
        dial_timeout: float = 10.0,
        call_timeout: float = 30.0,
        stop_grace_period: float = 300.0,
        remove_plugin_sockets: bool = False,
        devices: DeviceManager | None = None,
    ) -> None:
        for name, value in (
            ("dial_timeout", dial_timeout),
            ("call_timeout", call_timeout),
            ("stop_grace_period", stop_grace_period),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not os.fspath(plugin_dir):
            raise ConfigError("plugin_dir must name a directory, got an empty path")
        self._dir = Path(plugin_dir).absolute()
        self._registry = registry
        self._dial_timeout = float(dial_timeout)
        self._call_timeout = float(call_timeout)
        self._grace = float(stop_grace_period)
        self._remove_plugin_sockets = bool(remove_plugin_sockets)
        self._devices = devices
        self._resources: dict[str, HostedResource] = {}
        self._managed: set[str] = set()
        self._lock = anyio.Lock()
        self._server: ClosingServer | None = None
        self._sock: Socket | None = None  # bound, not yet handed to the server
        self._inode: int | None = None
        super().__init__()

    @property
    def plugin_dir(self) -> Path:
        """The device plugin directory (absolute)."""
        return self._dir

    @property
    def socket_path(self) -> Path:
        """``<plugin_dir>/kubelet.sock``."""
        return self._dir / KUBELET_SOCKET_NAME

    def resource_names(self) -> list[str]:
        """The resources currently registered through this server, sorted."""
        return sorted(self._resources)

    def device_group(self, resource_name: str) -> Any:
        """The last device group of a resource (None before its first ListAndWatch message or when unknown)."""
        resource = self._resources.get(resource_name)
        return resource.group if resource is not None else None

    def disconnected(self, resource_name: str) -> str | None:
        """Why a registered resource's plugin is disconnected (its ListAndWatch stream ended and it has not
        registered again), or None while it is connected or when the resource is unknown."""
        resource = self._resources.get(resource_name)
        return resource.disconnect_reason if resource is not None else None

    def dispense(self, info: PluginInfo) -> KubeletDevicePluginClient:
        """The :class:`DevicePlugin` client of a registration this server made (see :func:`is_kubelet_plugin`)."""
        if not is_kubelet_plugin(info):
            raise PluginNotFoundError(
                f"device plugin {info.name!r} was not registered through a kubelet registration socket"
                f" (options protocol={info.options.get('protocol')!r}, expected {KUBELET_PROTOCOL!r})"
            )
        return KubeletDevicePluginClient(info.name, self._resources.get, timeout=self._call_timeout)

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def _service_prepare(self) -> None:
        path = self.socket_path
        try:
            await anyio.to_thread.run_sync(lambda: self._dir.mkdir(mode=0o750, parents=True, exist_ok=True))
        except OSError as exc:
            raise ConfigError(
                f"kubelet_server plugin_dir {str(self._dir)!r} cannot be created: {exc.strerror or exc}"
            ) from exc
        await claim_socket_path(path, what="kubelet registration socket")
        if self._remove_plugin_sockets:
            await anyio.to_thread.run_sync(_remove_sockets, self._dir)
        await self._forget_earlier_registrations()
        # Bound before the task group is entered: a failure must not leave an entered task group behind (its cancel
        # scope, never exited, made anyio raise a RuntimeError on every enclosing scope).
        sock = None
        try:
            sock = bind_unix_socket(path)
            self._inode = path.stat().st_ino
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise ConfigError(
                f"cannot serve the kubelet registration socket {str(path)!r} in kubelet_server plugin_dir:"
                f" {exc.strerror or exc}"
            ) from exc
        self._sock = sock

    async def _service_start(self, tg: TaskGroup) -> None:
        server = ClosingServer([_RegistrationService(self)])
        sock = self._sock
        assert sock is not None
        await server.start(sock=sock)
        self._server, self._sock = server, None
        logger.info("kubelet device plugin registration served on %s", self.socket_path)

    async def _service_stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await stop_server(server, f"kubelet registration server on {self.socket_path}")

    async def _service_release(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()  # the server never took it: its start failed
        remove_socket_if_ours(self.socket_path, self._inode)
        resources, self._resources = list(self._resources.values()), {}
        for resource in resources:
            resource.close()
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            for resource in resources:
                await self._unmanage(resource.name)
                await self._deregister(resource.name)

    async def _forget_earlier_registrations(self) -> None:
        """Deregister what an earlier server on this directory left (a crash): those plugins must register again."""
        for info in await self._registry.list_plugins(PLUGIN_TYPE_DEVICE):
            try:
                ours = await self._registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, info.name, KUBELET_ALLOC_ID)
            except PluginNotFoundError:
                continue
            socket = ours.connection_info.socket_path if ours.connection_info is not None else ""
            if is_kubelet_plugin(ours) and Path(socket).parent == self._dir:
                logger.info("deregistering kubelet device plugin %r of an earlier run", info.name)
                await self._registry.deregister_plugin(PLUGIN_TYPE_DEVICE, info.name, KUBELET_ALLOC_ID)

    async def _manage(self, info: PluginInfo) -> None:
        if self._devices is None:
            return
        # Known as ours before the DeviceManager announces it, so an exporter never sends it back to kubelet.
        self._managed.add(info.name)
        try:
            await self._devices.add_plugin(info.name, self.dispense(info))
        except PluginHostError as exc:
            logger.warning("device plugin %r is registered but the device manager cannot run it: %s", info.name, exc)

    async def _unmanage(self, name: str) -> None:
        if self._devices is None:
            return
        try:
            await self._devices.remove_plugin(name)
        except PluginHostError as exc:
            logger.debug("device plugin %r was not managed: %s", name, exc)
        finally:
            self._managed.discard(name)

    def manages(self, name: str) -> bool:
        """Whether ``name`` is a DeviceManager plugin this server added (a Kubernetes device plugin it hosts)."""
        return name in self._managed

    async def _deregister(self, name: str) -> None:
        try:
            await self._registry.deregister_plugin(PLUGIN_TYPE_DEVICE, name, KUBELET_ALLOC_ID)
        except PluginHostError as exc:
            # Stopping goes on either way; a registry that already shut down must not fail it.
            logger.warning("could not deregister kubelet device plugin %r: %s", name, exc)

    # --- Register -------------------------------------------------------------------------------------------------

    async def register(self, request: Any) -> None:
        """Handle one ``Register``; a refusal is a :class:`GRPCError` carrying kubelet's message."""
        name = request.resource_name
        oversized = oversized_field_error(
            version=request.version, endpoint=request.endpoint, resource_name=request.resource_name
        )
        if oversized is not None:
            logger.warning("bad registration request from device plugin for resource %r: %s", clipped(name), oversized)
            raise GRPCError(Status.UNKNOWN, oversized)
        logger.info("registration request from device plugin for resource %r", clipped(name))
        error = (
            version_error(request.version)
            or resource_name_error(name)
            or endpoint_error(request.endpoint, os.fspath(self._dir))
        )
        if error is not None:
            logger.warning("bad registration request from device plugin for resource %r: %s", clipped(name), error)
            raise GRPCError(Status.UNKNOWN, error)
        connection = await self._dial(name, request.endpoint)
        try:
            await self._adopt(connection)
        except BaseException:
            connection.close()
            raise

    async def _dial(self, name: str, endpoint: str) -> PluginConnection:
        """Connect to the plugin and get its options, as kubelet does before answering Register."""
        path = self._dir / endpoint
        channel = Channel(path=os.fspath(path))
        where = f"kubelet device plugin {name!r} at {str(path)!r}"
        try:
            options = await unary_call(
                channel,
                "GetDevicePluginOptions",
                f"{DEVICE_PLUGIN_SERVICE}/GetDevicePluginOptions",
                wire.Empty(),
                strict_reply(wire.DevicePluginOptions),
                where=where,
                timeout=self._dial_timeout,
            )
        except PluginUnavailableError as exc:
            channel.close()
            raise GRPCError(Status.UNKNOWN, f"failed to dial device plugin: {exc}") from exc
        except PluginHostError as exc:
            channel.close()
            raise GRPCError(Status.UNKNOWN, f"failed to get device plugin options: {exc}") from exc
        except BaseException:
            channel.close()
            raise
        return PluginConnection(name, endpoint, path, channel, options)

    async def _adopt(self, connection: PluginConnection) -> None:
        """Make ``connection`` its resource's current one, register it, and start consuming its stream."""
        tg = self._tg
        if tg is None or self._lifecycle != "running":
            raise GRPCError(Status.UNAVAILABLE, "the kubelet registration server is stopping")
        name = connection.resource_name
        options = connection.options
        info = PluginInfo(
            name=name,
            type=PLUGIN_TYPE_DEVICE,
            connection_info=PluginConnectionInfo(socket_path=os.fspath(connection.socket_path)),
            alloc_id=KUBELET_ALLOC_ID,
            options={
                "protocol": KUBELET_PROTOCOL,
                "api_version": KUBELET_API_VERSION,
                "resource_name": name,
                "endpoint": connection.endpoint,
                "pre_start_required": _flag(options.pre_start_required),
                "get_preferred_allocation_available": _flag(options.get_preferred_allocation_available),
            },
        )
        async with self._lock:
            try:
                await self._registry.register_plugin(info)
            except PluginHostError as exc:
                raise GRPCError(Status.UNKNOWN, f"failed to register device plugin {name!r}: {exc}") from exc
            resource = self._resources.get(name)
            if resource is None:
                resource = self._resources[name] = HostedResource(name)
                await self._manage(info)
            old = resource.connect(connection)
            if old is not None:
                logger.info("device plugin %r registered again; replacing its connection to %s", name, old.socket_path)
                old.close()
            tg.start_soon(self._consume, resource, connection)
        logger.info("device plugin %r connected on %s", name, connection.socket_path)

    # --- ListAndWatch ---------------------------------------------------------------------------------------------

    async def _consume(self, resource: HostedResource, connection: PluginConnection) -> None:
        """Apply each ListAndWatch message; when the stream ends, every device of the resource turns unhealthy."""
        failure = ""
        first = True
        with connection.scope:
            try:
                with map_exceptions(grpc_errors("ListAndWatch", connection.where, None)), native_cancels_undone():
                    async with connection.channel.request(
                        f"{DEVICE_PLUGIN_SERVICE}/ListAndWatch",
                        Cardinality.UNARY_STREAM,
                        wire.Empty,
                        RawListAndWatchResponse,  # decoded below, off the loop when large
                    ) as stream:
                        await stream.send_message(wire.Empty(), end=True)
                        async for message in stream:
                            data = message.data
                            # ~20 bytes a device: a large message is decoded and converted in a worker thread.
                            update = await cpu_bound(
                                len(data) // 20, prepare_update, resource.name, data, resource.group
                            )
                            logger.debug("device plugin %r sent %d devices", resource.name, len(update.group.devices))
                            resource.update(connection, update)
                            first = False
            except PluginHostError as exc:
                failure = str(exc)
        if connection.scope.cancel_called:
            return  # replaced by a new registration, or the server is stopping
        connection.channel.close()
        connection.ended = True  # Allocate is refused from now on, while the devices are being marked
        reason = "its ListAndWatch stream " + ("failed" if failure else "ended")
        if first:
            reason += " before the first device list"
        if failure:
            reason += f": {failure}"
        logger.warning("device plugin %r: %s; its devices are unhealthy", resource.name, clipped(reason))
        description = f"the device plugin is disconnected: {reason}"
        group = resource.group
        unhealthy = None
        if group is not None and resource.connection is connection:
            unhealthy = await cpu_bound(len(group.devices), convert.mark_unhealthy, group.devices, description)
        if resource.disconnect(connection, description, unhealthy):
            resource.expiry = anyio.CancelScope()
            await self._expire(resource, connection, resource.expiry)

    async def _expire(self, resource: HostedResource, connection: PluginConnection, scope: anyio.CancelScope) -> None:
        """Deregister a resource whose plugin did not register again within the grace period."""
        with scope:
            await anyio.sleep(self._grace)
            async with self._lock:
                if resource.connection is not connection or self._resources.get(resource.name) is not resource:
                    return
                logger.warning(
                    "device plugin %r did not register again within %ss; deregistering it", resource.name, self._grace
                )
                del self._resources[resource.name]
                resource.expiry = None
                await self._unmanage(resource.name)
                await self._deregister(resource.name)
                resource.close()


def _remove_sockets(directory: Path) -> None:
    """Unlink every socket directly in ``directory`` (kubelet's start-up cleanup, limited to sockets)."""
    for entry in directory.iterdir():
        try:
            if stat.S_ISSOCK(entry.lstat().st_mode):
                logger.info("removing plugin socket %s, as kubelet does when it starts", entry)
                entry.unlink()
        except FileNotFoundError:
            continue


class _RegistrationService:
    """``v1beta1.Registration`` backed by a :class:`KubeletRegistrationServer`."""

    def __init__(self, server: KubeletRegistrationServer) -> None:
        self._server = server

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{REGISTRATION_SERVICE}/Register": Handler(
                self._register, Cardinality.UNARY_UNARY, wire.RegisterRequest, wire.Empty
            ),
        }

    async def _register(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        if request is None:
            raise GRPCError(Status.INVALID_ARGUMENT, "Register: no request message, expected one")
        await self._server.register(request)
        await stream.send_message(wire.Empty())
