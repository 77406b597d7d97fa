"""Durable register+deregister throughput at 100 and 10,000 registered plugins, against a Nomad-style baseline.

Nomad's dynamic plugin registry persists by rewriting its whole state (every registration) on each mutation.
The baseline here does the same: one JSON blob of the registry written to SQLite per mutation, with the same
SQLite settings (WAL, same ``synchronous``) and through the same ``Registry``, so only the persistence differs.

It also measures the physical limit, a bare ``BEGIN IMMEDIATE; INSERT; COMMIT`` on the same file system at the same
``synchronous`` level, one after each of our operations so both meet the disk in the same state (the ratio of our
p50 to its p50), and group commit: throughput with 1, 10 and 50 concurrent callers.

    python benchmarks/registry_churn.py [--ops 400] [--sizes 100,10000] [--synchronous full] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from plugin_host import PluginConnectionInfo, PluginInfo, Registry, SqliteStateStore
from plugin_host.registry.models import PluginUpdateEvent
from plugin_host.registry.store import Change, EventHistory, RegistrySnapshot, StoredPlugin, Upsert


class FullRewriteStore:
    """Nomad-style persistence: the whole registry as one JSON blob, rewritten per mutation."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self._conn.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")
        self._plugins: dict[tuple[str, str, str], StoredPlugin] = {}
        self._seq = 0
        self._limiter = anyio.CapacityLimiter(1)

    async def load_registry(self) -> RegistrySnapshot:
        return RegistrySnapshot(plugins=list(self._plugins.values()), last_seq=self._seq)

    async def commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        for change, event in commits:
            if isinstance(change, Upsert):
                info = change.info
                self._plugins[(info.type, info.name, info.alloc_id)] = StoredPlugin(change.position, info)
            else:
                self._plugins.pop((change.ptype, change.name, change.alloc_id), None)
            self._seq = event.seq
        blob = json.dumps(
            {"seq": self._seq, "plugins": [[p.position, p.info.model_dump()] for p in self._plugins.values()]}
        )

        def write() -> None:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('registry', ?)", (blob,))
            self._conn.execute("COMMIT")

        await anyio.to_thread.run_sync(write, limiter=self._limiter)

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        return EventHistory(events=[], oldest_seq=None, last_seq=self._seq)

    def seed(self, plugins: list[StoredPlugin]) -> None:
        """Start from these registrations, as if loaded from an earlier run."""
        self._plugins = {(p.info.type, p.info.name, p.info.alloc_id): p for p in plugins}
        self._seq = len(plugins)

    def close(self) -> None:
        self._conn.close()


def _info(i: int, alloc: str = "alloc") -> PluginInfo:
    return PluginInfo(
        name=f"plugin-{i:05d}",
        type="csi-node",
        version="1.0.0",
        alloc_id=alloc,
        connection_info=PluginConnectionInfo(socket_path=f"/run/csi/plugin-{i:05d}.sock"),
        options={"MountPoint": "/csi"},
    )


async def _prefill(registry: Registry, size: int) -> None:
    for i in range(size):
        await registry.register_plugin(_info(i))


async def _churn(registry: Registry, ops: int, bare: BareCommits | None = None) -> list[float]:
    """Time each of ``ops`` operations: alternately register and deregister a second alloc of plugin 0.

    With ``bare``, one bare commit follows each operation, so the two are measured in the same moments of the disk
    (an fsync's cost drifts by 2x over a run on a shared machine).
    """
    times: list[float] = []
    for i in range(ops):
        start = time.perf_counter()
        if i % 2 == 0:
            await registry.register_plugin(_info(0, alloc=f"churn-{i}"))
        else:
            await registry.deregister_plugin("csi-node", _info(0).name, f"churn-{i - 1}")
        times.append(time.perf_counter() - start)
        if bare is not None:
            bare.commit()
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "ops_per_s": round(len(times) / sum(times), 1),
        "mean_ms": round(statistics.fmean(times) * 1e3, 4),
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, 4),
    }


class BareCommits:
    """The physical limit: ``BEGIN IMMEDIATE; INSERT; COMMIT`` on a bare WAL file, same file system and setting."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self._conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        self._next = 0
        self.times: list[float] = []

    def commit(self) -> None:
        """One timed commit (run on the event loop: nothing else runs in this benchmark meanwhile)."""
        start = time.perf_counter()
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (self._next, "x" * 200))
        self._conn.execute("COMMIT")
        self.times.append(time.perf_counter() - start)
        self._next += 1

    def close(self) -> None:
        self._conn.close()


async def _concurrent(path: Path, callers: int, ops: int, synchronous: str) -> dict[str, Any]:
    """Throughput of ``callers`` tasks registering and deregistering their own allocs at once (group commit)."""
    per_caller = max(2, ops // callers // 2 * 2)
    async with SqliteStateStore(path, synchronous=synchronous) as store, Registry(state=store) as registry:  # type: ignore[arg-type]

        async def caller(c: int) -> None:
            for i in range(per_caller // 2):
                await registry.register_plugin(_info(c, alloc=f"c{c}-{i}"))
                await registry.deregister_plugin("csi-node", _info(c).name, f"c{c}-{i}")

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for c in range(callers):
                tg.start_soon(caller, c)
        elapsed = time.perf_counter() - start
    total = per_caller * callers
    return {"callers": callers, "ops": total, "ops_per_s": round(total / elapsed, 1)}


async def _measure(kind: str, size: int, ops: int, synchronous: str, workdir: Path) -> dict[str, Any]:
    path = workdir / f"{kind}-{size}.db"
    if kind == "ours":
        # Prefill quickly without fsync; the measured churn runs with the requested setting.
        async with SqliteStateStore(path, synchronous="normal") as store, Registry(state=store) as registry:
            await _prefill(registry, size)
        bare = BareCommits(workdir / f"bare-{size}.db", synchronous)
        async with SqliteStateStore(path, synchronous=synchronous) as store, Registry(state=store) as registry:  # type: ignore[arg-type]
            times = await _churn(registry, ops, bare)
        bare.close()
        ours, limit = _summary(times), _summary(bare.times)
        ratio = round(ours["p50_ms"] / limit["p50_ms"], 2)
        return {"plugins": size, "ops": ops, **ours, "bare_commit": limit, "p50_vs_bare_commit": ratio}
    else:
        # Seed the baseline as a restart would; prefilling through it costs O(size^2) blob rewrites.
        baseline = FullRewriteStore(path, synchronous)
        baseline.seed([StoredPlugin(i + 1, _info(i)) for i in range(size)])
        async with Registry(state=baseline) as registry:
            times = await _churn(registry, ops)
        baseline.close()
    return {"plugins": size, "ops": ops, **_summary(times)}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=400, help="measured operations per size (default 400)")
    parser.add_argument("--sizes", default="100,10000", help="registered plugins before churning")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"synchronous": args.synchronous, "ours": {}, "full_rewrite": {}}
    with tempfile.TemporaryDirectory(prefix="ph-bench-") as tmp:
        for size in sizes:
            results["ours"][str(size)] = await _measure("ours", size, args.ops, args.synchronous, Path(tmp))
            results["full_rewrite"][str(size)] = await _measure("baseline", size, args.ops, args.synchronous, Path(tmp))
        results["concurrency"] = [
            await _concurrent(Path(tmp) / f"concurrent-{n}.db", n, args.ops, args.synchronous) for n in (1, 10, 50)
        ]
    small, large = str(min(sizes)), str(max(sizes))
    one = results["concurrency"][0]["ops_per_s"]
    results["throughput_50_vs_1"] = round(results["concurrency"][-1]["ops_per_s"] / one, 1)
    results["speedup_vs_full_rewrite"] = round(
        results["full_rewrite"][large]["mean_ms"] / results["ours"][large]["mean_ms"], 1
    )
    results["cost_ratio_10k_vs_100"] = round(results["ours"][large]["mean_ms"] / results["ours"][small]["mean_ms"], 2)
    if args.json:
        print(json.dumps(results))
        return
    print(f"synchronous={args.synchronous}")
    for kind in ("ours", "full_rewrite"):
        for size, row in results[kind].items():
            print(
                f"{kind:>12} @ {int(size):>6} plugins: {row['ops_per_s']:>9.1f} ops/s"
                f"  p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms"
            )
    for size, row in results["ours"].items():
        print(
            f"ours p50 / bare commit p50 @ {int(size):>6} plugins: {row['p50_vs_bare_commit']}"
            f" (bare p50 {row['bare_commit']['p50_ms']:.3f} ms, interleaved; target <= 2)"
        )
    for row in results["concurrency"]:
        print(f"{row['callers']:>3} concurrent callers: {row['ops_per_s']:>9.1f} ops/s")
    print(f"throughput_50_vs_1: {results['throughput_50_vs_1']}  (target >= 5)")
    print(f"speedup_vs_full_rewrite @ {large}: {results['speedup_vs_full_rewrite']}  (target >= 20)")
    print(f"cost_ratio_10k_vs_100: {results['cost_ratio_10k_vs_100']}  (target <= 1.5)")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
