"""Task drivers that ship with plugin-host.

- :mod:`plugin_host.drivers.rawexec` — ``raw-exec``, the reference driver: runs a command as a plain host process
  (no isolation), recoverable across host restarts.

Each driver lives in its own subpackage, imported on demand (a driver may need an optional extra).
"""
