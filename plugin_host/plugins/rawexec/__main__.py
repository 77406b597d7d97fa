"""``python -m plugin_host.plugins.rawexec``: raw-exec as an external go-plugin task driver (for Nomad's
plugin_dir or plugin-host's launcher)."""

from __future__ import annotations

from plugin_host.driver.plugin import serve_driver_plugin
from plugin_host.plugins.rawexec import RawExecDriver


def main() -> int:
    """Serve raw-exec until the plugin client stops it."""
    return serve_driver_plugin(RawExecDriver())


if __name__ == "__main__":
    raise SystemExit(main())
