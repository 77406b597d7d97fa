"""Export every device plugin a DeviceManager runs to kubelet: :class:`DeviceManagerScanner`.

Where :class:`~plugin_host.kubelet.export.adapter.DevicePluginScanner` follows one plugin, this scanner follows the
DeviceManager's snapshot and changes, so built-in plugins, go-plugin plugins launched from ``plugin_dir`` (which
come, crash, relaunch and go) and plugins added by the embedding agent are all served, each device group as the
device type :func:`~plugin_host.kubelet.export.adapter.device_type_for_group` names. Devices of a plugin that is not
running (starting or restarting) are ``Unhealthy``; a plugin that goes away takes its device types with it.
``include(name)`` leaves plugins out: the host passes one that skips plugins hosted by its own kubelet registration
server, which came from kubelet in the first place. Allocate reserves through the DeviceManager, which routes to the
plugin providing the group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from plugin_host.device import PluginSnapshot, PluginState, SnapshotChange
from plugin_host.device.manager import DeviceManager
from plugin_host.errors import InvalidRequestError
from plugin_host.kubelet.api import HEALTHY, UNHEALTHY, AllocateRequest, AllocateResponse
from plugin_host.kubelet.export.adapter import container_response, device_type_for_group
from plugin_host.kubelet.export.api import DeviceInfo, DeviceTree, Notifier

__all__ = ["DeviceManagerScanner"]

logger = logging.getLogger(__name__)


class DeviceManagerScanner:
    """A :class:`~plugin_host.kubelet.export.api.Scanner` (with an ``allocate`` hook) over a DeviceManager's plugins."""

    def __init__(self, devices: DeviceManager, *, include: Callable[[str], bool] = lambda name: True) -> None:
        self._devices = devices
        self._include = include
        self._plugins: dict[str, PluginSnapshot] = {}
        # device type -> (group id, device id -> healthy), as last sent
        self._types: dict[str, tuple[str, dict[str, bool]]] = {}
        # device type -> the plugins providing its group, as last sent
        self._providers: dict[str, tuple[str, ...]] = {}

    @property
    def device_types(self) -> Mapping[str, str]:
        """Device type → the Nomad device group id it serves, as last sent."""
        return {dev_type: group_id for dev_type, (group_id, _) in self._types.items()}

    @property
    def providers(self) -> Mapping[str, tuple[str, ...]]:
        """Device type → the names of the plugins providing its group (sorted), as last sent."""
        return dict(self._providers)

    async def scan(self, notifier: Notifier) -> None:
        """Follow the DeviceManager until cancelled, sending a tree after every change."""
        async with self._devices.subscribe() as changes:
            async for change in changes:
                if isinstance(change, SnapshotChange):
                    self._plugins = {p.name: p for p in change.snapshot.plugins}
                elif change.plugin is None:
                    self._plugins.pop(change.name, None)
                else:
                    self._plugins[change.name] = change.plugin
                notifier.notify(self._tree())

    def _tree(self) -> DeviceTree:
        tree = DeviceTree()
        types: dict[str, tuple[str, dict[str, bool]]] = {}
        providers: dict[str, list[str]] = {}
        for name in sorted(self._plugins):
            plugin = self._plugins[name]
            if not self._include(name):
                continue
            running = plugin.state is PluginState.RUNNING
            for group in plugin.groups:
                dev_type = device_type_for_group(group)
                if dev_type in types and types[dev_type][0] != group.id:
                    logger.warning(
                        "device group %r maps to device type %r of another group; skipped", group.id, dev_type
                    )
                    continue
                _, health = types.setdefault(dev_type, (group.id, {}))
                providers.setdefault(dev_type, []).append(name)
                for device in group.devices:
                    healthy = running and device.healthy
                    # The same group from two plugins: a device is healthy when any of them says so.
                    health[device.id] = health.get(device.id, False) or healthy
        for dev_type, (_, health) in types.items():
            for dev_id, healthy in health.items():
                tree.add_device(dev_type, dev_id, DeviceInfo(state=HEALTHY if healthy else UNHEALTHY))
        self._types = types
        self._providers = {dev_type: tuple(sorted(set(names))) for dev_type, names in providers.items()}
        return tree

    async def allocate(self, request: AllocateRequest) -> AllocateResponse:
        """Reserve each container's devices through the DeviceManager; unknown or unhealthy ids are refused first."""
        responses = []
        for container in request.container_requests:
            ids = list(container.devices_ids)
            group_id = self._group_of(ids)
            responses.append(container_response(await self._devices.reserve(group_id, ids)))
        return AllocateResponse(container_responses=tuple(responses))

    def _group_of(self, ids: list[str]) -> str:
        """The one exported group holding every id (the hook is not told which resource kubelet called)."""
        if not ids:
            raise InvalidRequestError("Allocate: a container request without device ids; expected at least one")
        holders = [(group_id, health) for group_id, health in self._types.values() if all(i in health for i in ids)]
        if not holders:
            known = {i for _, health in self._types.values() for i in health}
            unknown = next((i for i in ids if i not in known), None)
            if unknown is not None:
                raise InvalidRequestError(f"unknown device {unknown!r}; expected one of the exported devices")
            raise InvalidRequestError(f"devices {ids} span several device groups; expected devices of one group")
        if len(holders) > 1:
            groups = sorted(group_id for group_id, _ in holders)
            raise InvalidRequestError(f"devices {ids} are in several exported groups {groups}; cannot tell which")
        group_id, health = holders[0]
        for dev_id in ids:
            if not health[dev_id]:
                raise InvalidRequestError(f"device {dev_id!r} is unhealthy; expected a healthy device")
        return group_id
