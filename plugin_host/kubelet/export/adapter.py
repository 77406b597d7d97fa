"""Export a Nomad-style :class:`~plugin_host.device.api.DevicePlugin` to kubelet: :class:`DevicePluginScanner`.

The scanner follows the plugin's fingerprint stream; each device group becomes a kubelet device type, served by the
:class:`~plugin_host.kubelet.Manager` as ``<namespace>/<type>``. Its ``allocate`` hook answers Allocate with the
plugin's ``reserve()``: the reservation's mounts, device nodes and environment make the container response.

Device type names: Nomad names a group ``<vendor>/<type>/<name>`` (``nomad/file/mock`` for fs-device), and ``/`` is
not allowed in the name part of a resource name. The type is ``<vendor>-<type>-<name>`` (``nomad-file-mock``) with
every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` and non-alphanumeric ends trimmed; a name longer than
63 characters keeps its first 54 and gets ``-`` and 8 hex digits of a hash of the group id, so it stays unique.
Pass ``type_name=`` to choose names yourself.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from plugin_host._backoff import Backoff
from plugin_host.device.api import ContainerReservation, DeviceGroup, DevicePlugin
from plugin_host.errors import ConfigError, InvalidPluginError, InvalidRequestError
from plugin_host.kubelet.api import (
    HEALTHY,
    UNHEALTHY,
    AllocateRequest,
    AllocateResponse,
    ContainerAllocateResponse,
    KubeletDeviceSpec,
    KubeletMount,
)
from plugin_host.kubelet.export.api import DeviceInfo, DeviceTree, Notifier

__all__ = ["DevicePluginScanner", "device_type_for_group"]

logger = logging.getLogger(__name__)

_OUTSIDE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MAX_TYPE = 63
_HASH_DIGITS = 8


def device_type_for_group(group: DeviceGroup) -> str:
    """The kubelet device type of a Nomad device group: ``<vendor>-<type>-<name>``, made a valid name part."""
    raw = f"{group.vendor}-{group.type}-{group.name}"
    name = _OUTSIDE_NAME.sub("_", raw).strip("._-")
    if len(name) > _MAX_TYPE:
        digest = hashlib.sha256(group.id.encode()).hexdigest()[:_HASH_DIGITS]
        name = f"{name[: _MAX_TYPE - _HASH_DIGITS - 1].rstrip('._-')}-{digest}"
    if not name:
        raise InvalidPluginError(f"device group {group.id!r} has no letter or digit to name a kubelet device type")
    return name


def _permissions(cgroup_perms: str) -> str:
    # Nomad leaves cgroup permissions empty for "the runtime default"; kubelet wants some of "rwm".
    perms = "".join(dict.fromkeys(p for p in cgroup_perms if p in "rwm"))
    return perms or "rw"


def container_response(reservation: ContainerReservation) -> ContainerAllocateResponse:
    """A Nomad reservation as the container response kubelet applies (mounts, device nodes, environment)."""
    return ContainerAllocateResponse(
        envs=dict(reservation.envs),
        mounts=tuple(
            KubeletMount(container_path=m.task_path, host_path=m.host_path, read_only=m.read_only)
            for m in reservation.mounts
        ),
        devices=tuple(
            KubeletDeviceSpec(
                container_path=d.task_path, host_path=d.host_path, permissions=_permissions(d.cgroup_perms)
            )
            for d in reservation.devices
        ),
    )


class DevicePluginScanner:
    """A :class:`~plugin_host.kubelet.export.api.Scanner` (with an ``allocate`` hook) backed by a Nomad device plugin.

    ``scan()`` sends a tree for every fingerprint message: each group's devices under its type name, healthy ones
    ``Healthy``, the others ``Unhealthy``. When the plugin reports an error, or its stream ends or fails, every
    device known so far is sent ``Unhealthy`` and the stream is opened again after ``backoff_initial`` seconds,
    doubling up to ``backoff_max`` (reset by a good message). Allocate calls ``plugin.reserve(ids)`` once per
    container; ids that are unknown or unhealthy are refused first, naming the id.
    """

    def __init__(
        self,
        plugin: DevicePlugin,
        *,
        type_name: Callable[[DeviceGroup], str] = device_type_for_group,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        if not isinstance(plugin, DevicePlugin):
            raise InvalidPluginError(f"plugin must implement the DevicePlugin protocol, got {type(plugin).__name__}")
        if not (isinstance(backoff_initial, int | float) and backoff_initial > 0):
            raise ConfigError(f"backoff_initial must be a positive number of seconds, got {backoff_initial!r}")
        if not (isinstance(backoff_max, int | float) and backoff_max >= backoff_initial):
            raise ConfigError(f"backoff_max must be a number of seconds >= backoff_initial, got {backoff_max!r}")
        self._plugin = plugin
        self._type_name = type_name
        self._backoff = (float(backoff_initial), float(backoff_max))
        self._devices: dict[str, dict[str, DeviceInfo]] = {}
        # every device id sent -> its info, for Allocate's checks (one lookup per id, not a walk of every device)
        self._known: dict[str, DeviceInfo] = {}

    @property
    def devices(self) -> Mapping[str, Mapping[str, DeviceInfo]]:
        """The last tree sent (device type -> device id -> info)."""
        return self._devices

    # --- Scanner --------------------------------------------------------------------------------------------------

    async def scan(self, notifier: Notifier) -> None:
        """Follow the plugin's fingerprint stream until cancelled, reopening it with backoff when it fails."""
        backoff = Backoff(*self._backoff)
        while True:
            if await self._follow(notifier):
                backoff.reset()
            await anyio.sleep(backoff.next())

    async def _follow(self, notifier: Notifier) -> bool:
        """One fingerprint stream; returns whether it delivered a good message before it ended."""
        good = False
        stream = self._plugin.fingerprint()
        try:
            while True:
                try:
                    response = await anext(stream)
                except StopAsyncIteration:
                    reason = "the fingerprint stream ended"
                    break
                except Exception as exc:
                    reason = f"the fingerprint stream failed: {exc}"
                    break
                if response.error is not None:
                    logger.warning("device plugin fingerprint error: %s; its devices are unhealthy", response.error)
                    self._send_unhealthy(notifier)
                    continue
                # A type name the framework refuses raises here and stops the manager: retrying cannot fix it.
                self._send(notifier, self._tree(response.device_groups))
                good = True
        finally:
            with anyio.CancelScope(shield=True):
                await _aclose(stream)
        logger.warning("device plugin: %s; its devices are unhealthy until it fingerprints again", reason)
        self._send_unhealthy(notifier)
        return good

    def _tree(self, groups: tuple[DeviceGroup, ...]) -> DeviceTree:
        tree = DeviceTree()
        for group in groups:
            dev_type = self._type_name(group)
            if dev_type in tree:
                logger.warning("device group %r maps to device type %r of another group; skipped", group.id, dev_type)
                continue
            for device in group.devices:
                tree.add_device(dev_type, device.id, DeviceInfo(state=HEALTHY if device.healthy else UNHEALTHY))
        return tree

    def _send(self, notifier: Notifier, tree: DeviceTree) -> None:
        self._devices = tree.snapshot()
        self._known = {dev_id: info for devices in self._devices.values() for dev_id, info in devices.items()}
        notifier.notify(tree)

    def _send_unhealthy(self, notifier: Notifier) -> None:
        tree = DeviceTree()
        for dev_type, devices in self._devices.items():
            for dev_id in devices:
                tree.add_device(dev_type, dev_id, DeviceInfo(state=UNHEALTHY))
        self._send(notifier, tree)

    # --- the allocate hook ----------------------------------------------------------------------------------------

    async def allocate(self, request: AllocateRequest) -> AllocateResponse:
        """Reserve each container's devices through the plugin; the reservations make the response."""
        responses: list[ContainerAllocateResponse] = []
        for container in request.container_requests:
            ids = list(container.devices_ids)
            self._check_ids(ids)
            reservation = await self._plugin.reserve(ids)
            responses.append(container_response(reservation))
        return AllocateResponse(container_responses=tuple(responses))

    def _check_ids(self, ids: list[str]) -> None:
        if not ids:
            raise InvalidRequestError("Allocate: a container request without device ids; expected at least one")
        known = self._known
        for dev_id in ids:
            info = known.get(dev_id)
            if info is None:
                raise InvalidRequestError(f"unknown device {dev_id!r}; expected one of the plugin's devices")
            if info.state != HEALTHY:
                raise InvalidRequestError(f"device {dev_id!r} is unhealthy; expected a healthy device")


async def _aclose(stream: Any) -> None:
    aclose: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(5.0):
        try:
            await aclose()
        except Exception:
            logger.warning("closing a device plugin's fingerprint stream raised", exc_info=True)
