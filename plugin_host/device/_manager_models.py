"""What the DeviceManager shows: frozen snapshots of its plugins and the change events a subscriber receives."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from plugin_host.device.api import DeviceGroup

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class PluginState(StrEnum):
    """Where a managed device plugin is in its life."""

    STARTING = "starting"
    """Added; its first fingerprint has not arrived yet."""
    RUNNING = "running"
    """Fingerprinting; ``groups`` is the plugin's latest answer."""
    RESTARTING = "restarting"
    """Its fingerprint stream failed; waiting ``retry_delay`` seconds before starting it again. Every device of
    ``groups`` is marked unhealthy meanwhile."""


class PluginSnapshot(BaseModel):
    """One managed device plugin at one moment."""

    model_config = _FROZEN

    name: str
    state: PluginState
    version: str = ""
    socket_path: str | None = None
    groups: tuple[DeviceGroup, ...] = ()
    last_error: str | None = None
    """Why the plugin last failed (kept after it recovers, until the next failure)."""
    restarts: int = 0
    """How many times the plugin's fingerprint stream was started again."""
    retry_delay: float | None = None
    """While restarting: the backoff (seconds) before the next start; otherwise None."""


class DeviceManagerSnapshot(BaseModel):
    """Every managed plugin, sorted by name, as of change ``seq``."""

    model_config = _FROZEN

    seq: int
    plugins: tuple[PluginSnapshot, ...] = ()

    def plugin(self, name: str) -> PluginSnapshot | None:
        """The plugin called ``name``, or None."""
        return next((p for p in self.plugins if p.name == name), None)

    @property
    def groups(self) -> tuple[DeviceGroup, ...]:
        """The device groups of every plugin, in plugin-name order."""
        return tuple(group for plugin in self.plugins for group in plugin.groups)


class SnapshotChange(BaseModel):
    """The whole picture: the first event of every subscription, and the one that replaces a backlog.

    ``lagged`` is True when the subscriber fell behind its buffer: the per-plugin changes it missed were dropped and
    this snapshot (taken when it is read) stands in for them.
    """

    model_config = _FROZEN

    kind: Literal["snapshot"] = "snapshot"
    snapshot: DeviceManagerSnapshot
    lagged: bool = False

    @property
    def seq(self) -> int:
        """The seq of the newest change the snapshot includes."""
        return self.snapshot.seq


class PluginChange(BaseModel):
    """One plugin changed (``plugin`` is its new snapshot) or was removed (``plugin`` is None)."""

    model_config = _FROZEN

    kind: Literal["plugin"] = "plugin"
    seq: int
    name: str
    plugin: PluginSnapshot | None


DeviceManagerChange = SnapshotChange | PluginChange
"""What ``DeviceManager.subscribe()`` yields."""
