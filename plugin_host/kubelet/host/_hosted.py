"""Kubernetes device plugins hosted by a :class:`KubeletRegistrationServer`, and the client the registry dispenses.

One :class:`HostedResource` per registered resource name holds the devices from the plugin's ListAndWatch stream
and the live connection. It outlives its connections: a plugin that registers again replaces the connection and
its next ListAndWatch message replaces the devices. :class:`KubeletDevicePluginClient` is the
:class:`~plugin_host.device.api.DevicePlugin` view of a resource: ``fingerprint()`` follows the devices,
``reserve()`` is an Allocate call for one container, ``stats()`` never sends anything (the kubelet API has no
statistics).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from plugin_host._grpc_client import status_text, unary_call
from plugin_host._proto import v1beta1 as wire
from plugin_host._text import clipped
from plugin_host.base import hclspec
from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PluginInfoResponse
from plugin_host.device.api import ContainerReservation, Device, DeviceGroup, FingerprintResponse, StatsResponse
from plugin_host.errors import ConfigError, DeviceError, PluginHostError, PluginProtocolError
from plugin_host.kubelet._convert import DEVICE_PLUGIN_SERVICE
from plugin_host.kubelet.host import _hosted_convert as convert
from plugin_host.kubelet.host._list_decode import DecodedListAndWatchResponse
from plugin_host.kubelet.host._register_checks import KUBELET_API_VERSION
from plugin_host.kubelet.host._reply_decode import strict_reply

__all__ = ["HostedResource", "KubeletDevicePluginClient", "ListUpdate", "PluginConnection", "prepare_update"]

logger = logging.getLogger(__name__)

# Kubelet bounds PreStartContainer by 30 s (KubeletPreStartContainerRPCTimeoutInSecs).
PRE_START_TIMEOUT = 30.0


@dataclass(eq=False)
class PluginConnection:
    """One registration's live connection: the channel to the plugin's socket and the options it answered."""

    resource_name: str
    endpoint: str
    socket_path: Path
    channel: Channel
    options: Any  # wire DevicePluginOptions
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: bool = False

    @property
    def where(self) -> str:
        """How messages name the plugin."""
        return f"kubelet device plugin {self.resource_name!r} at {str(self.socket_path)!r}"

    def close(self) -> None:
        """Stop consuming its stream and close the channel (idempotent, never blocks)."""
        self.scope.cancel()
        self.channel.close()


@dataclass(frozen=True, slots=True)
class ListUpdate:
    """A ListAndWatch message made ready for :meth:`HostedResource.update`: its device group and repeated ids."""

    group: DeviceGroup
    repeated: list[str]


def prepare_update(resource_name: str, data: bytes, previous: DeviceGroup | None) -> ListUpdate:
    """Decode and convert one ListAndWatch message (pure, O(n): it may run in a worker thread).

    Raises :class:`PluginProtocolError` for bytes that are not a ListAndWatchResponse. Devices unchanged from
    ``previous`` are its very objects (see :func:`~plugin_host.kubelet.host._hosted_convert.devices_from_wire`).
    """
    listed = DecodedListAndWatchResponse.FromString(data).devices
    devices = convert.devices_from_wire(listed, previous.devices if previous is not None else ())
    repeated = convert.repeated_ids(listed) if len(devices) != len(listed) else []
    return ListUpdate(convert.group_for(resource_name, devices), repeated)


class HostedResource:
    """The devices and connection of one resource name; ``group`` is None until the first ListAndWatch message."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.group: DeviceGroup | None = None
        self.connection: PluginConnection | None = None
        self.expiry: anyio.CancelScope | None = None
        self.closed = False
        self.disconnect_reason: str | None = None
        """Why the current connection's stream ended; None while it is up."""
        self._changed = anyio.Event()

    def changed(self) -> anyio.Event:
        """An event set at the next change (devices, connection or closing); take it before reading the state."""
        return self._changed

    def _publish(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def connect(self, connection: PluginConnection) -> PluginConnection | None:
        """Make ``connection`` current; returns the one it replaces (the caller closes it)."""
        old, self.connection = self.connection, connection
        self.disconnect_reason = None
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        self._publish()
        return old

    def update(self, connection: PluginConnection, update: ListUpdate) -> None:
        """A ListAndWatch message of ``connection``: the full device list replaces the previous one."""
        if connection is not self.connection:
            return
        group = update.group
        if update.repeated:
            logger.warning(
                "device plugin %r listed devices %s more than once in one ListAndWatch message; kept the last entry"
                " of each",
                self.name,
                clipped(str(update.repeated)),
            )
        # Cheap even for 100,000 devices: unchanged devices are the previous group's objects (compared by identity).
        if group != self.group:
            self.group = group
            self._publish()

    def disconnect(
        self, connection: PluginConnection, reason: str, unhealthy: tuple[Device, ...] | None = None
    ) -> bool:
        """``connection``'s stream ended: every device turns unhealthy (``unhealthy``: the group's devices already
        marked so, computed off the loop). False when the connection was already replaced."""
        connection.ended = True
        if connection is not self.connection:
            return False
        self.disconnect_reason = reason
        if self.group is not None:
            if unhealthy is None:
                unhealthy = convert.mark_unhealthy(self.group.devices, reason)
            self.group = convert.group_for(self.name, unhealthy)
        self._publish()
        return True

    def close(self) -> None:
        """The resource is gone (deregistered, or the server stopped): wake and end every fingerprint stream."""
        self.closed = True
        if self.connection is not None:
            self.connection.close()
        if self.expiry is not None:
            self.expiry.cancel()
        self._publish()


ResourceLookup = Callable[[str], HostedResource | None]


class KubeletDevicePluginClient:
    """A hosted Kubernetes device plugin as a Nomad :class:`~plugin_host.device.api.DevicePlugin`.

    Dispensed by :meth:`KubeletRegistrationServer.dispense`; use it with ``async with`` like any dispensed device
    client. It follows its resource across re-registrations. ``timeout`` bounds Allocate (seconds).

    - ``fingerprint()``: the resource's device group (vendor ``<domain>``, type and name ``<resource>``) at once,
      then after every change; devices are unhealthy while the plugin's stream is down. A resource that is no
      longer registered ends the stream with an error response.
    - ``reserve(ids)``: ``Allocate`` for one container with ``ids`` (each must be a known, healthy device), then
      ``PreStartContainer`` when the plugin asked for it; envs, mounts and device nodes make the reservation.
      Annotations and CDI device names have no Nomad equivalent and are dropped (logged).
    - ``stats()``: sends nothing and waits until closed, since the kubelet API has no statistics.
    - ``set_config()``: accepts only an empty configuration; Kubernetes device plugins are configured elsewhere.
    """

    def __init__(self, resource_name: str, lookup: ResourceLookup, *, timeout: float | None = 30.0) -> None:
        self._name = resource_name
        self._lookup = lookup
        self._timeout = timeout

    @property
    def resource_name(self) -> str:
        """The Kubernetes resource name, ``<domain>/<resource>``."""
        return self._name

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    # --- BasePlugin -----------------------------------------------------------------------------------------------

    async def plugin_info(self) -> PluginInfoResponse:
        """A device plugin named after its resource, speaking kubelet's API version."""
        return PluginInfoResponse(
            type=PLUGIN_TYPE_DEVICE, name=self._name, plugin_version="", plugin_api_versions=(KUBELET_API_VERSION,)
        )

    async def config_schema(self) -> hclspec.Spec:
        """An empty object: a Kubernetes device plugin takes no configuration from the host."""
        return hclspec.obj({})

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        """Accept an empty configuration; anything else is a :class:`ConfigError`."""
        if config is None or (isinstance(config, Mapping | bytes | bytearray) and not config):
            return
        raise ConfigError(
            f"kubelet device plugin {self._name!r} takes no configuration from the host, got {type(config).__name__}"
            " with content; configure the plugin where it runs"
        )

    # --- DevicePlugin ---------------------------------------------------------------------------------------------

    async def fingerprint(self) -> AsyncGenerator[FingerprintResponse, None]:
        """The device group at once (after the plugin's first ListAndWatch message), then on every change."""
        sent: DeviceGroup | None = None
        while True:
            resource = self._lookup(self._name)
            if resource is None or resource.closed:
                yield FingerprintResponse(error=f"kubelet device plugin {self._name!r} is not registered")
                return
            changed = resource.changed()
            group = resource.group
            # The resource replaces its group only when it changed: identity says it, where == is O(devices).
            if group is not None and group is not sent:
                sent = group
                yield FingerprintResponse(device_group=group)
                continue
            await changed.wait()

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        """Allocate ``device_ids`` for one container; :class:`DeviceError` names what is wrong."""
        if isinstance(device_ids, str):
            raise DeviceError(f"reserve takes a sequence of device ids, not the string {device_ids!r}")
        ids = list(device_ids)
        resource = self._lookup(self._name)
        if resource is None or resource.closed:
            raise DeviceError(f"kubelet device plugin {self._name!r} is not registered")
        _check_ids(self._name, ids, resource.group)
        connection = resource.connection
        if connection is None or connection.ended:
            raise DeviceError(
                f"kubelet device plugin {self._name!r} is disconnected (its ListAndWatch stream ended);"
                " it must register again before devices can be reserved"
            )

        def refused(rpc: str) -> Callable[[GRPCError], PluginHostError]:
            return lambda exc: DeviceError(f"{connection.where} refused {rpc} of devices {ids}: {status_text(exc)}")

        reply = await unary_call(
            connection.channel,
            "Allocate",
            f"{DEVICE_PLUGIN_SERVICE}/Allocate",
            convert.allocate_request_to_wire(ids),
            strict_reply(wire.AllocateResponse),
            where=connection.where,
            timeout=self._timeout,
            status_error=refused("Allocate"),
        )
        if len(reply.container_responses) != 1:
            raise PluginProtocolError(
                f"Allocate on {connection.where}: {len(reply.container_responses)} container responses for one"
                " container request, expected exactly one"
            )
        container = reply.container_responses[0]
        if container.annotations or container.cdi_devices:
            logger.warning(
                "%s: Allocate returned annotations %s and CDI devices %s, which a Nomad reservation cannot carry",
                connection.where,
                sorted(container.annotations),
                [d.name for d in container.cdi_devices],
            )
        if connection.options.pre_start_required:
            await unary_call(
                connection.channel,
                "PreStartContainer",
                f"{DEVICE_PLUGIN_SERVICE}/PreStartContainer",
                wire.PreStartContainerRequest(devices_ids=ids),
                strict_reply(wire.PreStartContainerResponse),
                where=connection.where,
                timeout=PRE_START_TIMEOUT,
                status_error=refused("PreStartContainer"),
            )
        return convert.reservation_from_wire(container)

    async def stats(self, interval: float) -> AsyncGenerator[StatsResponse, None]:
        """Nothing to send: the kubelet device plugin API has no statistics. Waits until the caller leaves."""
        await anyio.sleep_forever()
        yield StatsResponse()  # pragma: no cover - unreachable; makes this an async generator


def _check_ids(name: str, ids: list[str], group: DeviceGroup | None) -> None:
    if not ids:
        raise DeviceError(f"no device ids given for kubelet device plugin {name!r}; expected at least one")
    devices = {d.id: d for d in group.devices} if group is not None else {}
    seen: set[str] = set()
    for device_id in ids:
        if device_id in seen:
            raise DeviceError(f"device {device_id!r} of {name!r} is listed twice; each device once")
        seen.add(device_id)
        device = devices.get(device_id)
        if device is None:
            known = ", ".join(sorted(devices)[:10]) or "none"
            raise DeviceError(f"kubelet device plugin {name!r} has no device {device_id!r}; its devices: {known}")
        if not device.healthy:
            raise DeviceError(
                f"device {device_id!r} of kubelet device plugin {name!r} is unhealthy"
                f" ({device.health_description}); expected a healthy device"
            )
