"""Restart cost: reopen a state file holding N plugins and serve list_plugins (target < 0.5 s at 10,000).

python benchmarks/restart.py [--plugins 10000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from plugin_host import PluginConnectionInfo, PluginInfo, Registry, SqliteStateStore


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ph-bench-") as tmp:
        path = Path(tmp) / "state.db"
        async with SqliteStateStore(path, synchronous="normal") as store, Registry(state=store) as registry:
            for i in range(args.plugins):
                await registry.register_plugin(
                    PluginInfo(
                        name=f"plugin-{i:05d}",
                        type="csi-node",
                        version="1.0.0",
                        alloc_id=f"alloc-{i}",
                        connection_info=PluginConnectionInfo(socket_path=f"/run/csi/plugin-{i:05d}.sock"),
                        options={"MountPoint": "/csi"},
                    )
                )
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            async with SqliteStateStore(path) as store, Registry(state=store) as registry:
                listed = await registry.list_plugins("csi-node")
                times.append(time.perf_counter() - start)
            assert len(listed) == args.plugins
    result = {
        "plugins": args.plugins,
        "reopen_and_list_s_median": round(statistics.median(times), 4),
        "reopen_and_list_s_max": round(max(times), 4),
        "target_s": 0.5,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"reopen + list_plugins with {args.plugins} plugins: median {result['reopen_and_list_s_median']} s,"
            f" max {result['reopen_and_list_s_max']} s (target < 0.5 s)"
        )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
