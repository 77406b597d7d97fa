"""The reference plugins that ship with plugin-host, one subpackage each, imported on demand.

- :mod:`plugin_host.plugins.fsdevice`: ``fs-device``, the reference device plugin (Nomad's example): files in a
  directory are devices. Also reachable as :mod:`plugin_host.fsdevice`, the path the design contract names.
- :mod:`plugin_host.plugins.rawexec`: ``raw-exec``, the reference task driver: runs a command as a plain host
  process (no isolation), recoverable across host restarts.
- :mod:`plugin_host.plugins.virt`: ``virt``, a task driver running each task as a VM through libvirt (the ``[virt]``
  extra).
- :mod:`plugin_host.plugins.csi_hostpath`: a CSI plugin whose volumes are directories
  (``python -m plugin_host.plugins.csi_hostpath``).

Each plugin's ``__main__`` runs it as its own process (the console scripts ``plugin-host-fs-device``,
``plugin-host-raw-exec``, ``plugin-host-virt``). A plugin may need an optional extra, so nothing here imports them.
"""
