"""A fake kubelet for testing Kubernetes device plugins: the far side that cannot run in a test, strict where
kubelet is. Use it in the tests of a plugin built with :mod:`plugin_host.kubelet` (or of any v1beta1 plugin)::

    async with FakeKubelet(plugin_dir) as kubelet, Manager("example.com", scanner, plugin_dir=plugin_dir):
        devices = await kubelet.wait_for_devices("example.com/gpu", lambda devices: len(devices) == 2)
        response = await kubelet.allocate("example.com/gpu", ["gpu0"])

What it follows from kubelet's devicemanager (``pkg/kubelet/cm/devicemanager``, plugin/v1beta1 server.go,
handler.go, client.go; manager.go):

- start: every socket in the plugin directory is removed (``CleanupPluginDirectory``: sockets only; directories and
  other files stay), then ``kubelet.sock`` is served;
- Register: the version must be ``v1beta1`` (``requested API version "X" is not supported by kubelet. Supported
  version is ["v1beta1"]``); the resource name must pass ``IsExtendedResourceName`` (``the ResourceName "X" is
  invalid``); then, inside the call, kubelet dials ``<plugin_dir>/<endpoint>`` and calls GetDevicePluginOptions,
  and only answers once that worked (``failed to dial device plugin: ...``). Errors reach the plugin as status
  UNKNOWN, as a plain Go error does. Stricter than kubelet: the endpoint must be a plain file name (kubelet joins it
  to the directory unchecked);
- ListAndWatch: started after a successful Register; each message replaces the resource's whole device list; when
  the stream ends, every device of the resource turns unhealthy (``PluginDisconnected``); a new Register for the
  same resource replaces the old connection;
- Allocate: one container per call (kubelet allocates per container), only for devices it knows as healthy; a
  response without exactly one container response is an error (kubelet: "no containers return in allocation
  response");
- GetPreferredAllocation / PreStartContainer: only called when the plugin's options advertise them.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.server import Server, Stream

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import unary_call
from plugin_host._proto import v1beta1 as wire
from plugin_host._service import TaskGroupService
from plugin_host._sockets import bind_unix_socket
from plugin_host.errors import PluginHostError, PluginProtocolError
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet import _names
from plugin_host.kubelet.api import (
    API_VERSION,
    HEALTHY,
    KUBELET_SOCKET_NAME,
    UNHEALTHY,
    AllocateRequest,
    AllocateResponse,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    ContainerPreferredAllocationRequest,
    DevicePluginOptions,
    KubeletDevice,
    PreferredAllocationRequest,
    PreferredAllocationResponse,
    PreStartContainerRequest,
    RegisterRequest,
)

__all__ = ["FakeKubelet", "FakeKubeletError"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0


class FakeKubeletError(AssertionError):
    """The test asked the fake kubelet for something kubelet would never do."""


@dataclass
class _Endpoint:
    resource: str
    socket_path: Path
    channel: Channel
    options: DevicePluginOptions
    devices: dict[str, KubeletDevice] = field(default_factory=dict)
    connected: bool = True
    messages: int = 0
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class FakeKubelet(TaskGroupService):
    """Serves ``<plugin_dir>/kubelet.sock`` while the ``async with`` block runs; see the module docstring."""

    def __init__(
        self,
        plugin_dir: Path,
        *,
        dial_timeout: float = 10.0,
        call_timeout: float = 10.0,
        clean_on_start: bool = True,
    ) -> None:
        super().__init__()
        self.plugin_dir = Path(plugin_dir)
        self._clean_on_start = clean_on_start
        self.socket_path = self.plugin_dir / KUBELET_SOCKET_NAME
        self.registrations: list[RegisterRequest] = []
        """Accepted Register calls, in order."""
        self.rejections: list[str] = []
        """The error messages of refused Register calls, in order."""
        self.starts = 0
        self._dial_timeout = dial_timeout
        self._call_timeout = call_timeout
        self._endpoints: dict[str, _Endpoint] = {}
        self._server: Server | None = None
        self._changed: anyio.Event | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def _service_start(self, tg: TaskGroup) -> None:
        self._changed = anyio.Event()
        await self.start(clean=self._clean_on_start)

    def _service_stop_timeout(self) -> float:
        return 10.0

    async def _service_stop(self) -> None:
        await self.stop()

    async def start(self, *, clean: bool = True) -> None:
        """Start as kubelet does: remove every socket in the plugin directory, then serve ``kubelet.sock``.

        ``clean=False`` leaves the plugins' sockets in place (a kubelet.sock re-created by other means).
        """
        if self._server is not None:
            raise FakeKubeletError("the fake kubelet is already running")
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        for entry in os.scandir(self.plugin_dir) if clean else ():
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                os.unlink(entry.path)
        sock = bind_unix_socket(self.socket_path)
        server = Server([_RegistrationService(self)])
        await server.start(sock=sock)
        self._server = server
        self.starts += 1
        self._signal()

    async def stop(self) -> None:
        """Stop serving (kubelet going down): drop every plugin connection, remove ``kubelet.sock``."""
        server, self._server = self._server, None
        with anyio.CancelScope(shield=True):
            for endpoint in list(self._endpoints.values()):
                await self._disconnect(endpoint)
            if server is not None:
                server.close()
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    await server.wait_closed()
                self.socket_path.unlink(missing_ok=True)
        self._signal()

    async def restart(self, *, clean: bool = True) -> None:
        """Stop, then start again: plugin sockets are deleted and a new ``kubelet.sock`` (new inode) appears."""
        await self.stop()
        await self.start(clean=clean)

    # --- what kubelet knows ---------------------------------------------------------------------------------------

    def registration_count(self, resource: str) -> int:
        """Accepted Register calls for ``resource``."""
        return sum(1 for r in self.registrations if r.resource_name == resource)

    def devices(self, resource: str) -> dict[str, KubeletDevice]:
        """kubelet's current view of ``resource`` (empty when never registered)."""
        endpoint = self._endpoints.get(resource)
        return dict(endpoint.devices) if endpoint is not None else {}

    def options(self, resource: str) -> DevicePluginOptions:
        """The options the plugin of ``resource`` answered inside Register."""
        return self._endpoint(resource).options

    def connected(self, resource: str) -> bool:
        """Whether the ListAndWatch stream of ``resource`` is open."""
        endpoint = self._endpoints.get(resource)
        return endpoint is not None and endpoint.connected

    def _listed(self, resource: str) -> bool:
        endpoint = self._endpoints.get(resource)
        return endpoint is not None and endpoint.connected and endpoint.messages > 0

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is re-checked on every change (bound with ``anyio.fail_after``)."""
        while not condition():
            assert self._changed is not None
            await self._changed.wait()

    async def wait_for_registration(self, resource: str, count: int = 1) -> RegisterRequest:
        """The ``count``-th accepted registration of ``resource``, once it happened."""
        await self.wait_until(lambda: self.registration_count(resource) >= count)
        return [r for r in self.registrations if r.resource_name == resource][count - 1]

    async def wait_for_devices(
        self,
        resource: str,
        predicate: Callable[[dict[str, KubeletDevice]], bool] = bool,
    ) -> dict[str, KubeletDevice]:
        """kubelet's view of ``resource`` once its current ListAndWatch stream has sent a list and ``predicate``
        holds for it (by default: once it has devices)."""
        await self.wait_until(lambda: self._listed(resource) and predicate(self.devices(resource)))
        return self.devices(resource)

    # --- calls kubelet makes --------------------------------------------------------------------------------------

    async def allocate(self, resource: str, device_ids: Sequence[str]) -> ContainerAllocateResponse:
        """Allocate ``device_ids`` to one container, as kubelet does: only devices it knows as healthy."""
        endpoint = self._endpoint(resource)
        for dev_id in device_ids:
            device = endpoint.devices.get(dev_id)
            if device is None or device.health != HEALTHY:
                state = "unknown" if device is None else device.health
                raise FakeKubeletError(f"kubelet would not allocate {dev_id!r} of {resource}: it is {state}")
        request = AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=tuple(device_ids)),))
        response = await self.raw_allocate(resource, request)
        if len(response.container_responses) != 1:
            raise PluginProtocolError(
                f"Allocate for {resource}: {len(response.container_responses)} container responses, expected 1"
            )
        return response.container_responses[0]

    async def raw_allocate(self, resource: str, request: AllocateRequest) -> AllocateResponse:
        """Send ``request`` as is (no kubelet-side checks): for testing how a plugin refuses bad requests."""
        reply = await self._call(
            resource,
            "Allocate",
            convert.allocate_request_to_wire(request),
            wire.AllocateResponse,
        )
        return convert.allocate_response_from_wire(reply)

    async def get_preferred_allocation(
        self,
        resource: str,
        available: Sequence[str],
        must_include: Sequence[str] = (),
        size: int = 1,
        *,
        force: bool = False,
    ) -> PreferredAllocationResponse:
        """GetPreferredAllocation for one container; kubelet only calls it when advertised (``force`` skips that)."""
        if not force and not self.options(resource).get_preferred_allocation_available:
            raise FakeKubeletError(f"kubelet would not call GetPreferredAllocation on {resource}: not advertised")
        request = PreferredAllocationRequest(
            container_requests=(
                ContainerPreferredAllocationRequest(
                    available_device_ids=tuple(available),
                    must_include_device_ids=tuple(must_include),
                    allocation_size=size,
                ),
            )
        )
        reply = await self._call(
            resource,
            "GetPreferredAllocation",
            convert.preferred_allocation_request_to_wire(request),
            wire.PreferredAllocationResponse,
        )
        return convert.preferred_allocation_response_from_wire(reply)

    async def pre_start_container(self, resource: str, device_ids: Sequence[str], *, force: bool = False) -> None:
        """PreStartContainer; kubelet only calls it when ``pre_start_required`` (``force`` skips that)."""
        if not force and not self.options(resource).pre_start_required:
            raise FakeKubeletError(f"kubelet would not call PreStartContainer on {resource}: not required")
        request = PreStartContainerRequest(devices_ids=tuple(device_ids))
        await self._call(
            resource,
            "PreStartContainer",
            convert.pre_start_request_to_wire(request),
            wire.PreStartContainerResponse,
        )

    # --- internals ------------------------------------------------------------------------------------------------

    def _endpoint(self, resource: str) -> _Endpoint:
        endpoint = self._endpoints.get(resource)
        if endpoint is None:
            raise FakeKubeletError(f"no plugin registered {resource}; registered: {sorted(self._endpoints)}")
        return endpoint

    async def _call(self, resource: str, rpc: str, request: Any, reply_type: type[Any]) -> Any:
        endpoint = self._endpoint(resource)
        return await unary_call(
            endpoint.channel,
            rpc,
            f"{convert.DEVICE_PLUGIN_SERVICE}/{rpc}",
            request,
            reply_type,
            where=f"device plugin {resource} at {str(endpoint.socket_path)!r}",
            timeout=self._call_timeout,
        )

    def _signal(self) -> None:
        if self._changed is not None:
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def register(self, request: RegisterRequest) -> None:
        """kubelet's Register handler; raises ``GRPCError(UNKNOWN, message)`` to refuse."""
        try:
            await self._register(request)
        except GRPCError as exc:
            self.rejections.append(exc.message or "")
            self._signal()
            raise

    async def _register(self, request: RegisterRequest) -> None:
        if request.version != API_VERSION:
            raise GRPCError(
                Status.UNKNOWN,
                f"requested API version {json.dumps(request.version)} is not supported by kubelet."
                f' Supported version is ["{API_VERSION}"]',
            )
        if _names.resource_name_problem(request.resource_name) is not None:
            raise GRPCError(Status.UNKNOWN, _names.invalid_resource_name_message(request.resource_name))
        problem = _names.endpoint_problem(request.endpoint)
        if problem is not None:
            raise GRPCError(Status.UNKNOWN, f"the endpoint {json.dumps(request.endpoint)} is invalid: {problem}")
        socket_path = self.plugin_dir / request.endpoint
        channel = Channel(path=str(socket_path))
        try:
            reply = await unary_call(
                channel,
                "GetDevicePluginOptions",
                f"{convert.DEVICE_PLUGIN_SERVICE}/GetDevicePluginOptions",
                wire.Empty(),
                wire.DevicePluginOptions,
                where=f"device plugin at {str(socket_path)!r}",
                timeout=self._dial_timeout,
            )
        except PluginHostError as exc:
            channel.close()
            raise GRPCError(Status.UNKNOWN, f"failed to dial device plugin: {exc}") from exc
        except BaseException:
            channel.close()  # the plugin hung up on Register (grpclib cancels this handler)
            raise
        if self._server is None:
            channel.close()
            raise GRPCError(Status.UNAVAILABLE, "kubelet is shutting down")
        old = self._endpoints.get(request.resource_name)
        if old is not None:
            await self._disconnect(old)
        endpoint = _Endpoint(request.resource_name, socket_path, channel, convert.options_from_wire(reply))
        self._endpoints[request.resource_name] = endpoint
        assert self._tg is not None
        self._tg.start_soon(self._list_and_watch, endpoint)
        self.registrations.append(request)
        self._signal()

    async def _disconnect(self, endpoint: _Endpoint) -> None:
        endpoint.scope.cancel()
        endpoint.channel.close()
        self._mark_disconnected(endpoint)

    def _mark_disconnected(self, endpoint: _Endpoint) -> None:
        if endpoint.connected:
            endpoint.connected = False
            endpoint.devices = {
                dev_id: device.model_copy(update={"health": UNHEALTHY}) for dev_id, device in endpoint.devices.items()
            }
            self._signal()

    async def _list_and_watch(self, endpoint: _Endpoint) -> None:
        with endpoint.scope:
            try:
                with native_cancels_undone():
                    async with endpoint.channel.request(
                        f"{convert.DEVICE_PLUGIN_SERVICE}/ListAndWatch",
                        Cardinality.UNARY_STREAM,
                        wire.Empty,
                        wire.ListAndWatchResponse,
                    ) as stream:
                        await stream.send_message(wire.Empty(), end=True)
                        async for message in stream:
                            if self._endpoints.get(endpoint.resource) is not endpoint:
                                return
                            devices = convert.list_response_from_wire(message)
                            endpoint.devices = {device.id: device for device in devices}
                            endpoint.messages += 1
                            self._signal()
            except (GRPCError, StreamTerminatedError, ProtocolError, OSError) as exc:
                logger.info("ListAndWatch of %s ended: %s", endpoint.resource, exc)
            finally:
                self._mark_disconnected(endpoint)


class _RegistrationService:
    def __init__(self, kubelet: FakeKubelet) -> None:
        self._kubelet = kubelet

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{convert.REGISTRATION_SERVICE}/Register": Handler(
                self._register, Cardinality.UNARY_UNARY, wire.RegisterRequest, wire.Empty
            )
        }

    async def _register(self, stream: Stream[Any, Any]) -> None:
        message = await stream.recv_message()
        assert message is not None
        await self._kubelet.register(convert.register_request_from_wire(message))
        await stream.send_message(wire.Empty())
