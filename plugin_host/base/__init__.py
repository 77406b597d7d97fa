"""Nomad's base plugin contract, shared by every plugin kind (device, driver)."""

from __future__ import annotations

from plugin_host.base.api import (
    PLUGIN_TYPE_DEVICE as PLUGIN_TYPE_DEVICE,
)
from plugin_host.base.api import (
    PLUGIN_TYPE_DRIVER as PLUGIN_TYPE_DRIVER,
)
from plugin_host.base.api import (
    BasePlugin as BasePlugin,
)
from plugin_host.base.api import (
    PluginInfoResponse as PluginInfoResponse,
)

__all__ = ["PLUGIN_TYPE_DEVICE", "PLUGIN_TYPE_DRIVER", "BasePlugin", "PluginInfoResponse"]
