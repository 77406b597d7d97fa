"""Act as a kubelet: Kubernetes device plugins register here and are hosted as Nomad device plugins.

:class:`~plugin_host.kubelet.host.registration_server.KubeletRegistrationServer` serves ``v1beta1.Registration``
with kubelet's checks, dials each plugin back and follows its ListAndWatch stream; the registry dispenses a
:class:`~plugin_host.kubelet.host._hosted.KubeletDevicePluginClient` per resource. The public names are re-exported by
:mod:`plugin_host.kubelet`.
"""
