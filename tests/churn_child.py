"""Child process for the crash-safety tests: applies churn operations and prints each acknowledged one.

Usage: python churn_child.py STATE_FILE SEED COUNT
"""

from __future__ import annotations

import sys

import anyio
from registry_helpers import churn_ops

from plugin_host import Registry, SqliteStateStore


async def main(path: str, seed: int, count: int) -> None:
    """Apply the operations one by one; a line on stdout means the operation was acknowledged."""
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        print("ready", flush=True)
        for index, (kind, info) in enumerate(churn_ops(seed, count)):
            if kind == "register":
                await registry.register_plugin(info)
            else:
                await registry.deregister_plugin(info.type, info.name, info.alloc_id)
            print(index, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
