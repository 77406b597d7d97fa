"""Gauges read at scrape time from the managers' snapshots, so the paths that change them are never touched."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugin_host._version import __version__

if TYPE_CHECKING:
    from plugin_host.csi.manager import CsiManager
    from plugin_host.device.manager import DeviceManager
    from plugin_host.registry import Registry

__all__ = ["SnapshotCollector"]

# The states of a managed device plugin (device.PluginState), each a series, 1 for the current one: the usual
# Prometheus shape for an enum, so `plugin_host_device_plugin_state{state="restarting"} == 1` alerts.
_DEVICE_PLUGIN_STATES = ("starting", "running", "restarting")


class SnapshotCollector(Collector):
    """Reads whichever components are being watched; a component not (or no longer) watched yields no samples."""

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.devices: DeviceManager | None = None
        self.csi: CsiManager | None = None

    def describe(self) -> Iterable[Metric]:
        # Nothing to declare up front: registering must not run a collection (the components may not exist yet).
        return ()

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("plugin_host_info", "The running plugin-host; always 1.", labels=("version",))
        info.add_metric((__version__,), 1)
        yield info
        yield from self._registry()
        yield from self._devices()
        yield from self._csi()

    def _registry(self) -> Iterable[Metric]:
        subscribers = GaugeMetricFamily(
            "plugin_host_registry_subscribers", "Live registry subscriptions, by plugin type.", labels=("type",)
        )
        backlog = GaugeMetricFamily(
            "plugin_host_registry_subscriber_backlog_events",
            "Events buffered and not yet read by the slowest subscriber of each plugin type (its lag).",
            labels=("type",),
        )
        if self.registry is not None:
            for ptype, backlogs in sorted(self.registry.subscriber_backlogs().items()):
                subscribers.add_metric((ptype,), len(backlogs))
                backlog.add_metric((ptype,), max(backlogs, default=0))
        yield subscribers
        yield backlog

    def _devices(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "plugin_host_device_plugin_state",
            "Managed device plugins by state (1 for the plugin's current state, 0 for the others).",
            labels=("plugin", "state"),
        )
        restarts = CounterMetricFamily(
            "plugin_host_device_plugin_restarts",
            "Times a managed device plugin's fingerprint stream was started again.",
            labels=("plugin",),
        )
        devices = GaugeMetricFamily(
            "plugin_host_devices",
            "Devices of each managed device plugin's groups, by health.",
            labels=("plugin", "group", "healthy"),
        )
        if self.devices is not None:
            for plugin in self.devices.snapshot().plugins:
                for name in _DEVICE_PLUGIN_STATES:
                    state.add_metric((plugin.name, name), 1 if plugin.state.value == name else 0)
                restarts.add_metric((plugin.name,), plugin.restarts)
                for group in plugin.groups:
                    healthy = sum(1 for device in group.devices if device.healthy)
                    devices.add_metric((plugin.name, group.id, "true"), healthy)
                    devices.add_metric((plugin.name, group.id, "false"), len(group.devices) - healthy)
        yield state
        yield restarts
        yield devices

    def _csi(self) -> Iterable[Metric]:
        healthy = GaugeMetricFamily(
            "plugin_host_csi_plugin_healthy",
            "Whether each supervised CSI plugin answered its last probe as ready (1) or not (0).",
            labels=("type", "plugin"),
        )
        if self.csi is not None:
            for health in self.csi.snapshot():
                if health.supervised:
                    healthy.add_metric((health.type, health.name), 1 if health.healthy else 0)
        yield healthy
