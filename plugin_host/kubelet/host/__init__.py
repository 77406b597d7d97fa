"""Act as a kubelet: Kubernetes device plugins register here and are hosted as Nomad device plugins.

:class:`~plugin_host.kubelet.host.registration_server.KubeletRegistrationServer` serves ``v1beta1.Registration``
with kubelet's checks, dials each plugin back and follows its ListAndWatch stream; the registry dispenses a
:class:`~plugin_host.kubelet.host._hosted.KubeletDevicePluginClient` per resource. The public names are re-exported by
:mod:`plugin_host.kubelet`.
"""

from __future__ import annotations

from plugin_host.kubelet.host._hosted import KubeletDevicePluginClient as KubeletDevicePluginClient
from plugin_host.kubelet.host.registration_server import KUBELET_ALLOC_ID as KUBELET_ALLOC_ID
from plugin_host.kubelet.host.registration_server import KUBELET_PROTOCOL as KUBELET_PROTOCOL
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer as KubeletRegistrationServer
from plugin_host.kubelet.host.registration_server import is_kubelet_plugin as is_kubelet_plugin

__all__ = [
    "KUBELET_ALLOC_ID",
    "KUBELET_PROTOCOL",
    "KubeletDevicePluginClient",
    "KubeletRegistrationServer",
    "is_kubelet_plugin",
]
