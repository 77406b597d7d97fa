"""Child process for the crash-safety tests: applies churn operations and prints each acknowledged one.

Usage: python tests/helpers/churn_child.py STATE_FILE SEED COUNT [TASKS]

With TASKS > 1, that many tasks churn at once, each over plugin names of its own (``t<task>p<n>``), so their
mutations meet in group-committed batches; each acknowledgement is printed as ``<task> <index>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

# Run as a script (python tests/helpers/churn_child.py): the helpers package lives in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.registry import churn_ops, task_ops
from plugin_host import Registry, SqliteStateStore


async def main(path: str, seed: int, count: int, tasks: int = 1) -> None:
    """Apply the operations; a line on stdout means the operation was acknowledged."""
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        print("ready", flush=True)

        async def churn(task: int) -> None:
            ops = churn_ops(seed, count) if tasks == 1 else task_ops(seed, task, count)
            for index, (kind, info) in enumerate(ops):
                if kind == "register":
                    await registry.register_plugin(info)
                else:
                    await registry.deregister_plugin(info.type, info.name, info.alloc_id)
                print(index if tasks == 1 else f"{task} {index}", flush=True)

        if tasks == 1:
            await churn(0)
        else:
            async with anyio.create_task_group() as tg:
                for task in range(tasks):
                    tg.start_soon(churn, task)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
