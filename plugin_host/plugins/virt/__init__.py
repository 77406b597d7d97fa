"""The virt task driver: each task a VM through libvirt (after nomad-driver-virt).

The configuration models import without libvirt; :class:`VirtDriver` needs the ``[virt]`` extra (libvirt-python
and pycdlib) and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugin_host.plugins.virt._config import CONFIG_SPEC as CONFIG_SPEC
from plugin_host.plugins.virt._config import TASK_CONFIG_SPEC as TASK_CONFIG_SPEC
from plugin_host.plugins.virt._config import BridgeConfig as BridgeConfig
from plugin_host.plugins.virt._config import EmulatorConfig as EmulatorConfig
from plugin_host.plugins.virt._config import NetworkInterfaceConfig as NetworkInterfaceConfig
from plugin_host.plugins.virt._config import OsConfig as OsConfig
from plugin_host.plugins.virt._config import VirtConfig as VirtConfig
from plugin_host.plugins.virt._config import VirtTaskConfig as VirtTaskConfig
from plugin_host.plugins.virt._validate import MIN_DISK_MB as MIN_DISK_MB
from plugin_host.plugins.virt._validate import MIN_MEMORY_MB as MIN_MEMORY_MB

if TYPE_CHECKING:
    from plugin_host.plugins.virt.driver import PLUGIN_NAME as PLUGIN_NAME
    from plugin_host.plugins.virt.driver import VirtDriver as VirtDriver

__all__ = [
    "CONFIG_SPEC",
    "MIN_DISK_MB",
    "MIN_MEMORY_MB",
    "PLUGIN_NAME",
    "TASK_CONFIG_SPEC",
    "BridgeConfig",
    "EmulatorConfig",
    "NetworkInterfaceConfig",
    "OsConfig",
    "VirtConfig",
    "VirtDriver",
    "VirtTaskConfig",
]


def __getattr__(name: str) -> Any:
    # The driver imports libvirt; keep it out of `import plugin_host.plugins.virt` so the config validates without it.
    if name in ("VirtDriver", "PLUGIN_NAME"):
        from plugin_host.plugins.virt import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
