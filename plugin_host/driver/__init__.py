"""Nomad's task driver API: the ``DriverPlugin`` Protocol and its models, the gRPC adapters and the DriverManager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._lazy import lazy_exports

if TYPE_CHECKING:
    from plugin_host.driver.api import DRIVER_API_VERSION as DRIVER_API_VERSION
    from plugin_host.driver.api import AllocatedCpuResources as AllocatedCpuResources
    from plugin_host.driver.api import AllocatedMemoryResources as AllocatedMemoryResources
    from plugin_host.driver.api import AllocatedTaskResources as AllocatedTaskResources
    from plugin_host.driver.api import Capabilities as Capabilities
    from plugin_host.driver.api import CpuStats as CpuStats
    from plugin_host.driver.api import DeviceConfig as DeviceConfig
    from plugin_host.driver.api import DnsConfig as DnsConfig
    from plugin_host.driver.api import DriverFingerprint as DriverFingerprint
    from plugin_host.driver.api import DriverNetwork as DriverNetwork
    from plugin_host.driver.api import DriverPlugin as DriverPlugin
    from plugin_host.driver.api import ExecTaskResult as ExecTaskResult
    from plugin_host.driver.api import ExitResult as ExitResult
    from plugin_host.driver.api import FsIsolation as FsIsolation
    from plugin_host.driver.api import HealthState as HealthState
    from plugin_host.driver.api import HostsConfig as HostsConfig
    from plugin_host.driver.api import LinuxResources as LinuxResources
    from plugin_host.driver.api import MemoryStats as MemoryStats
    from plugin_host.driver.api import MountConfig as MountConfig
    from plugin_host.driver.api import MountConfigSupport as MountConfigSupport
    from plugin_host.driver.api import NetIsolationMode as NetIsolationMode
    from plugin_host.driver.api import NetworkIsolationSpec as NetworkIsolationSpec
    from plugin_host.driver.api import NetworkPort as NetworkPort
    from plugin_host.driver.api import NetworkResource as NetworkResource
    from plugin_host.driver.api import PortMapping as PortMapping
    from plugin_host.driver.api import Resources as Resources
    from plugin_host.driver.api import ResourceUsage as ResourceUsage
    from plugin_host.driver.api import TaskConfig as TaskConfig
    from plugin_host.driver.api import TaskEvent as TaskEvent
    from plugin_host.driver.api import TaskHandle as TaskHandle
    from plugin_host.driver.api import TaskResourceUsage as TaskResourceUsage
    from plugin_host.driver.api import TaskState as TaskState
    from plugin_host.driver.api import TaskStatus as TaskStatus
    from plugin_host.driver.client import DriverPluginClient as DriverPluginClient
    from plugin_host.driver.manager import DRIVER_NOT_CONFIGURED as DRIVER_NOT_CONFIGURED
    from plugin_host.driver.manager import DriverManager as DriverManager
    from plugin_host.driver.manager import ManagedTaskEvent as ManagedTaskEvent
    from plugin_host.driver.manager import RecoveryResult as RecoveryResult
    from plugin_host.driver.server import DriverPluginServer as DriverPluginServer
    from plugin_host.driver.server import driver_plugin_handlers as driver_plugin_handlers


__all__ = [
    "DRIVER_API_VERSION",
    "DRIVER_NOT_CONFIGURED",
    "AllocatedCpuResources",
    "AllocatedMemoryResources",
    "AllocatedTaskResources",
    "Capabilities",
    "CpuStats",
    "DeviceConfig",
    "DnsConfig",
    "DriverFingerprint",
    "DriverManager",
    "DriverNetwork",
    "DriverPlugin",
    "DriverPluginClient",
    "DriverPluginServer",
    "ExecTaskResult",
    "ExitResult",
    "FsIsolation",
    "HealthState",
    "HostsConfig",
    "LinuxResources",
    "ManagedTaskEvent",
    "MemoryStats",
    "MountConfig",
    "MountConfigSupport",
    "NetIsolationMode",
    "NetworkIsolationSpec",
    "NetworkPort",
    "NetworkResource",
    "PortMapping",
    "RecoveryResult",
    "ResourceUsage",
    "Resources",
    "TaskConfig",
    "TaskEvent",
    "TaskHandle",
    "TaskResourceUsage",
    "TaskState",
    "TaskStatus",
    "driver_plugin_handlers",
]

# Imported on first use (see plugin_host._lazy): importing this package stays cheap.
_LAZY = {
    "DRIVER_API_VERSION": "plugin_host.driver.api",
    "AllocatedCpuResources": "plugin_host.driver.api",
    "AllocatedMemoryResources": "plugin_host.driver.api",
    "AllocatedTaskResources": "plugin_host.driver.api",
    "Capabilities": "plugin_host.driver.api",
    "CpuStats": "plugin_host.driver.api",
    "DeviceConfig": "plugin_host.driver.api",
    "DnsConfig": "plugin_host.driver.api",
    "DriverFingerprint": "plugin_host.driver.api",
    "DriverNetwork": "plugin_host.driver.api",
    "DriverPlugin": "plugin_host.driver.api",
    "ExecTaskResult": "plugin_host.driver.api",
    "ExitResult": "plugin_host.driver.api",
    "FsIsolation": "plugin_host.driver.api",
    "HealthState": "plugin_host.driver.api",
    "HostsConfig": "plugin_host.driver.api",
    "LinuxResources": "plugin_host.driver.api",
    "MemoryStats": "plugin_host.driver.api",
    "MountConfig": "plugin_host.driver.api",
    "MountConfigSupport": "plugin_host.driver.api",
    "NetIsolationMode": "plugin_host.driver.api",
    "NetworkIsolationSpec": "plugin_host.driver.api",
    "NetworkPort": "plugin_host.driver.api",
    "NetworkResource": "plugin_host.driver.api",
    "PortMapping": "plugin_host.driver.api",
    "Resources": "plugin_host.driver.api",
    "ResourceUsage": "plugin_host.driver.api",
    "TaskConfig": "plugin_host.driver.api",
    "TaskEvent": "plugin_host.driver.api",
    "TaskHandle": "plugin_host.driver.api",
    "TaskResourceUsage": "plugin_host.driver.api",
    "TaskState": "plugin_host.driver.api",
    "TaskStatus": "plugin_host.driver.api",
    "DriverPluginClient": "plugin_host.driver.client",
    "DRIVER_NOT_CONFIGURED": "plugin_host.driver.manager",
    "DriverManager": "plugin_host.driver.manager",
    "ManagedTaskEvent": "plugin_host.driver.manager",
    "RecoveryResult": "plugin_host.driver.manager",
    "DriverPluginServer": "plugin_host.driver.server",
    "driver_plugin_handlers": "plugin_host.driver.server",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
