"""Serve devices to kubelet: the device plugin framework after Intel's ``pkg/deviceplugin``.

:mod:`~plugin_host.kubelet.export.api` (scanner, notifier, device tree, CDI models, optional hooks), the
:class:`~plugin_host.kubelet.export.manager.Manager` that serves each device type with a
:class:`~plugin_host.kubelet.export.server.DeviceTypeServer`, and the scanners that export Nomad device plugins
(:mod:`~plugin_host.kubelet.export.adapter` for one plugin, :mod:`~plugin_host.kubelet.export.manager_export` for a
DeviceManager's). The public names are re-exported by :mod:`plugin_host.kubelet`.
"""
