"""Run the reference filesystem device plugin as an external Nomad plugin: ``python -m plugin_host.plugins.fsdevice``
(or the ``plugin-host-fs-device`` command). Nomad, or plugin-host's launcher, starts it; run by hand it exits 1."""

from __future__ import annotations

from plugin_host.device.plugin import serve_device_plugin
from plugin_host.plugins.fsdevice.plugin import FsDevice

__all__ = ["main"]


def main() -> int:
    """Serve :class:`FsDevice` over go-plugin until the client shuts it down; the exit code."""
    return serve_device_plugin(FsDevice())


if __name__ == "__main__":
    raise SystemExit(main())
