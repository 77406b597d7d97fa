"""Run the hostpath CSI plugin as its own process.

    python -m plugin_host.plugins.csi_hostpath --socket /tmp/csi/hostpath.sock --data-dir /tmp/csi/data \
        [--name hostpath.csi.plugin-host.dev] [--node-id node-1] [--max-volumes N] [--log-level debug]

Once the socket accepts connections it prints one line, ``serving <name> on <socket>``, to stdout. SIGTERM or
SIGINT stops it: calls in flight are cancelled, the socket file is removed, and it exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from plugin_host.csi.server import CsiPluginServer
from plugin_host.errors import PluginHostError
from plugin_host.plugins.csi_hostpath.hostpath import DEFAULT_NAME, HostpathPlugin


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="hostpath CSI plugin (volumes are directories)")
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket to serve CSI on")
    parser.add_argument("--data-dir", required=True, type=Path, help="directory that holds the volumes")
    parser.add_argument("--name", default=DEFAULT_NAME, help="plugin name (default: %(default)s)")
    parser.add_argument("--node-id", default=None, help="node id reported by NodeGetInfo (default: hostname)")
    parser.add_argument("--max-volumes", type=int, default=0, help="max_volumes_per_node (default: 0, no limit)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    plugin = HostpathPlugin(args.data_dir, name=args.name, node_id=args.node_id, max_volumes_per_node=args.max_volumes)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with CsiPluginServer(plugin, args.socket):
            print(f"serving {args.name} on {args.socket}", flush=True)
            async for signum in signals:
                logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
                return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 after a clean stop, 1 when the socket cannot be served."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        anyio.run(serve, args)
    except PluginHostError as exc:
        print(f"csi_hostpath: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
