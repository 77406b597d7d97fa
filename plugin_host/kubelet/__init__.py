"""Kubernetes device plugins (kubelet's device plugin API v1beta1), both ways round.

- :mod:`plugin_host.kubelet.export`: serve devices to kubelet. A framework after Intel's ``pkg/deviceplugin``
  (:class:`Scanner`, :class:`Notifier`, :class:`DeviceTree`, :class:`Manager`, :class:`DeviceTypeServer`) with CDI
  specs and recovery from kubelet restarts; :class:`DevicePluginScanner` and :class:`DeviceManagerScanner` export Nomad
  device plugins through it.
- :mod:`plugin_host.kubelet.host`: act as a kubelet. :class:`KubeletRegistrationServer` lets Kubernetes device plugins
  register and hosts them as Nomad device plugins (:class:`KubeletDevicePluginClient`).
- :mod:`plugin_host.kubelet.api` (here): what both sides share, the API's constants and message models. A DRA
  sibling (``dra/``) joins them later.

Every public name is re-exported here; import from ``plugin_host.kubelet``.
"""

from __future__ import annotations

from plugin_host.kubelet.api import API_VERSION as API_VERSION
from plugin_host.kubelet.api import DEFAULT_PLUGIN_DIR as DEFAULT_PLUGIN_DIR
from plugin_host.kubelet.api import HEALTHY as HEALTHY
from plugin_host.kubelet.api import KUBELET_SOCKET_NAME as KUBELET_SOCKET_NAME
from plugin_host.kubelet.api import UNHEALTHY as UNHEALTHY
from plugin_host.kubelet.api import AllocateRequest as AllocateRequest
from plugin_host.kubelet.api import AllocateResponse as AllocateResponse
from plugin_host.kubelet.api import ContainerAllocateRequest as ContainerAllocateRequest
from plugin_host.kubelet.api import ContainerAllocateResponse as ContainerAllocateResponse
from plugin_host.kubelet.api import ContainerPreferredAllocationRequest as ContainerPreferredAllocationRequest
from plugin_host.kubelet.api import ContainerPreferredAllocationResponse as ContainerPreferredAllocationResponse
from plugin_host.kubelet.api import DevicePluginOptions as DevicePluginOptions
from plugin_host.kubelet.api import Health as Health
from plugin_host.kubelet.api import KubeletDevice as KubeletDevice
from plugin_host.kubelet.api import KubeletDeviceSpec as KubeletDeviceSpec
from plugin_host.kubelet.api import KubeletMount as KubeletMount
from plugin_host.kubelet.api import PreferredAllocationRequest as PreferredAllocationRequest
from plugin_host.kubelet.api import PreferredAllocationResponse as PreferredAllocationResponse
from plugin_host.kubelet.api import PreStartContainerRequest as PreStartContainerRequest
from plugin_host.kubelet.api import RegisterRequest as RegisterRequest
from plugin_host.kubelet.export.adapter import DevicePluginScanner as DevicePluginScanner
from plugin_host.kubelet.export.adapter import device_type_for_group as device_type_for_group
from plugin_host.kubelet.export.api import DEFAULT_CDI_DIR as DEFAULT_CDI_DIR
from plugin_host.kubelet.export.api import USE_DEFAULT as USE_DEFAULT
from plugin_host.kubelet.export.api import Allocator as Allocator
from plugin_host.kubelet.export.api import CdiContainerEdits as CdiContainerEdits
from plugin_host.kubelet.export.api import CdiDevice as CdiDevice
from plugin_host.kubelet.export.api import CdiDeviceNode as CdiDeviceNode
from plugin_host.kubelet.export.api import CdiHook as CdiHook
from plugin_host.kubelet.export.api import CdiMount as CdiMount
from plugin_host.kubelet.export.api import CdiSpec as CdiSpec
from plugin_host.kubelet.export.api import ContainerPreStarter as ContainerPreStarter
from plugin_host.kubelet.export.api import DeviceInfo as DeviceInfo
from plugin_host.kubelet.export.api import DeviceTree as DeviceTree
from plugin_host.kubelet.export.api import Notifier as Notifier
from plugin_host.kubelet.export.api import PostAllocator as PostAllocator
from plugin_host.kubelet.export.api import PreferredAllocator as PreferredAllocator
from plugin_host.kubelet.export.api import Scanner as Scanner
from plugin_host.kubelet.export.api import UseDefault as UseDefault
from plugin_host.kubelet.export.manager import Manager as Manager
from plugin_host.kubelet.export.manager_export import DeviceManagerScanner as DeviceManagerScanner
from plugin_host.kubelet.export.server import DeviceTypeServer as DeviceTypeServer
from plugin_host.kubelet.host import KubeletDevicePluginClient as KubeletDevicePluginClient
from plugin_host.kubelet.host.registration_server import KUBELET_ALLOC_ID as KUBELET_ALLOC_ID
from plugin_host.kubelet.host.registration_server import KUBELET_PROTOCOL as KUBELET_PROTOCOL
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer as KubeletRegistrationServer
from plugin_host.kubelet.host.registration_server import is_kubelet_plugin as is_kubelet_plugin

__all__ = [
    "API_VERSION",
    "DEFAULT_CDI_DIR",
    "DEFAULT_PLUGIN_DIR",
    "HEALTHY",
    "KUBELET_ALLOC_ID",
    "KUBELET_PROTOCOL",
    "KUBELET_SOCKET_NAME",
    "UNHEALTHY",
    "USE_DEFAULT",
    "AllocateRequest",
    "AllocateResponse",
    "Allocator",
    "CdiContainerEdits",
    "CdiDevice",
    "CdiDeviceNode",
    "CdiHook",
    "CdiMount",
    "CdiSpec",
    "ContainerAllocateRequest",
    "ContainerAllocateResponse",
    "ContainerPreStarter",
    "ContainerPreferredAllocationRequest",
    "ContainerPreferredAllocationResponse",
    "DeviceInfo",
    "DeviceManagerScanner",
    "DevicePluginOptions",
    "DevicePluginScanner",
    "DeviceTree",
    "DeviceTypeServer",
    "Health",
    "KubeletDevice",
    "KubeletDevicePluginClient",
    "KubeletDeviceSpec",
    "KubeletMount",
    "KubeletRegistrationServer",
    "Manager",
    "Notifier",
    "PostAllocator",
    "PreStartContainerRequest",
    "PreferredAllocationRequest",
    "PreferredAllocationResponse",
    "PreferredAllocator",
    "RegisterRequest",
    "Scanner",
    "UseDefault",
    "device_type_for_group",
    "is_kubelet_plugin",
]
