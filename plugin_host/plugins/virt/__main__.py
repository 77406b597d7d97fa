"""``python -m plugin_host.plugins.virt`` (or the ``plugin-host-virt`` command): the virt driver as an external
go-plugin task driver, like nomad-driver-virt, for Nomad's plugin_dir or plugin-host's launcher.

Importing this module needs no libvirt: the driver (and the ``[virt]`` extra) is imported when :func:`main` runs.
"""

from __future__ import annotations

import sys

from plugin_host.driver.plugin import serve_driver_plugin

__all__ = ["MISSING_EXTRA_MESSAGE", "main"]

MISSING_EXTRA_MESSAGE = (
    "plugin-host-virt needs the virt extra (libvirt-python and pycdlib): pip install 'plugin-host[virt]' "
    "(libvirt-python builds against libvirt-dev and pkg-config). Missing: {missing}\n"
)


def main() -> int:
    """Serve the virt driver until the plugin client stops it; 1 when the ``[virt]`` extra is not installed."""
    try:
        from plugin_host.plugins.virt.driver import VirtDriver
    except ModuleNotFoundError as exc:
        if exc.name not in ("libvirt", "libvirtaio", "pycdlib"):
            raise
        sys.stderr.write(MISSING_EXTRA_MESSAGE.format(missing=exc.name))
        sys.stderr.flush()
        return 1
    return serve_driver_plugin(VirtDriver())


if __name__ == "__main__":
    raise SystemExit(main())
