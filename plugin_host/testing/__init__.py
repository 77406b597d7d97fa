"""Test doubles for testing plugins and hosts built with plugin-host, as structlog and httpcore ship theirs.

Plain anyio code with no test-framework dependency; import the module you need (each loads only what it uses):

- :mod:`plugin_host.testing.kubelet`: :class:`~plugin_host.testing.kubelet.FakeKubelet`, a kubelet that Kubernetes
  device plugins register with (strict where kubelet is), for testing a plugin built with :mod:`plugin_host.kubelet`.
- :mod:`plugin_host.testing.device_plugin`: :class:`~plugin_host.testing.device_plugin.ScriptedPlugin`, a scripted
  Kubernetes device plugin, for testing something that acts as a kubelet.
- :mod:`plugin_host.testing.goplugin`: launch a go-plugin plugin program as Nomad would and get a device or driver
  client for it (:func:`~plugin_host.testing.goplugin.launched_device_plugin`).
"""
