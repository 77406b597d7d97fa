"""`status` of a host whose fs-device lists 10,000 files, one of them changing every second.

A real :class:`~plugin_host.PluginHost` runs here with ``plugin "fs-device"`` over a directory of ``--files`` files
(``list_period = "1s"``), and one file's mode is toggled every second (healthy ↔ unhealthy), so every scan brings
one change. Meanwhile a client in its own process (so that its decoding does not count as the host's loop time)
asks ``status`` over the admin socket with :func:`plugin_host.admin.query_status` for ``--seconds`` seconds, and a
few ``plugin-host status --json`` processes run at the end. Measured:

- ``status_ms``: the client's round trip of one ``status`` (connect, request, the host's answer, decoding it into a
  ``HostStatus``): p50, p99, max;
- ``server_ms``: the host's own part of one answer, timed in the host (``status()``, ``model_dump``, JSON encoding);
- ``loop_lag_ms``: how late a ticker task in the host (sleeping 5 ms at a time) woke up: how long the event loop was
  blocked (scans, fingerprint changes and status answers together);
- ``cli_seconds``: wall time of each ``plugin-host status --json`` process (interpreter start-up included);
- ``answer_bytes``: the size of one answer line;
- ``host_gc``: the host process's garbage collections (how many, how many full, the longest), with CPython's
  defaults (``--gc library``, an application embedding the library) or set as ``plugin-host run`` sets them
  (``--gc cli``, :func:`plugin_host.cli.settle_gc`).

Target (issue 13): ``status`` p99 under 100 ms.

    python benchmarks/status_scale.py [--files 10000] [--seconds 30] [--gc library|cli] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plugin_host import PluginHost
from plugin_host.cli import settle_gc
from plugin_host.host_config import HostConfig

TARGET_P99_MS = 100.0

# The client: query_status as often as it can (a 20 ms pause between requests) until the deadline; prints the round
# trips (ms) as one JSON list.
_CLIENT = r"""
import json, sys, time, anyio
from plugin_host.admin import query_status

async def main(socket, seconds, devices):
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        status = await query_status(socket)
        times.append((time.perf_counter() - start) * 1000)
        count = sum(len(g.devices) for p in status.plugins for g in p.groups)
        if count != devices:
            raise SystemExit(f"status listed {count} devices, expected {devices}")
        await anyio.sleep(0.02)
    print(json.dumps(times))

anyio.run(main, sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
"""


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(p99, 2),
        "max": round(ordered[-1], 2),
        "n": len(ordered),
    }


async def measure(root: Path, files: int, seconds: float, cli_runs: int, gc_policy: str) -> dict[str, Any]:
    devices_dir = root / "devices"
    devices_dir.mkdir()
    for i in range(files):
        path = devices_dir / f"dev{i:06d}"
        path.write_bytes(b"x")
        path.chmod(0o644)
    config_file = root / "host.hcl"
    config_file.write_text(
        f'state_dir = "{root}/st"\n'
        f'plugin "fs-device" {{\n  config {{\n    dir = "{devices_dir}"\n    list_period = "1s"\n  }}\n}}\n'
    )
    config = HostConfig.from_hcl_file(config_file)
    lags: list[float] = []
    server: list[float] = []
    gc_pauses: list[tuple[int, float]] = []
    thresholds = gc.get_threshold()
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000))

    changes = [0]

    host = PluginHost(config)
    # Time the host's own part of each answer: the admin socket is given the method when the host starts.
    status_json = host._status_json

    async def timed_status() -> Any:
        start = time.perf_counter()
        result = await status_json()
        if not isinstance(result, bytes):  # an EncodedJSON is sent as it is; anything else the AdminServer encodes
            json.dumps(result)
        server.append((time.perf_counter() - start) * 1000)
        return result

    host._status_json = timed_status  # type: ignore[method-assign]

    async with host, anyio.create_task_group() as tg:
        # Wait for the first fingerprint: every file listed.
        with anyio.fail_after(60):
            while True:
                plugin = host.devices.snapshot().plugin("fs-device")
                if plugin is not None and plugin.groups and len(plugin.groups[0].devices) == files:
                    break
                await anyio.sleep(0.05)

        async def ticker() -> None:
            while True:
                before = time.perf_counter()
                await anyio.sleep(0.005)
                lags.append((time.perf_counter() - before - 0.005) * 1000)

        async def changer() -> None:
            i = 0
            while True:
                await anyio.sleep(1.0)
                path = devices_dir / f"dev{(i // 2) % files:06d}"
                path.chmod(0o777 if i % 2 == 0 else 0o644)
                changes[0] += 1
                i += 1

        if gc_policy == "cli":
            settle_gc()  # as `plugin-host run` does once the host runs
        tg.start_soon(ticker)
        tg.start_soon(changer)
        gc.callbacks.append(on_gc)
        client = await anyio.run_process(
            [sys.executable, "-c", _CLIENT, os.fspath(config.admin_socket_path), str(seconds), str(files)],
            check=True,
            stderr=None,
        )
        status_ms = json.loads(client.stdout)
        cli_seconds = []
        answer_bytes = 0
        for _ in range(cli_runs):
            start = time.perf_counter()
            done = await anyio.run_process(
                [sys.executable, "-m", "plugin_host", "status", "--json", "--config", os.fspath(config_file)],
                check=True,
            )
            cli_seconds.append(round(time.perf_counter() - start, 3))
            answer_bytes = len(json.dumps(json.loads(done.stdout), separators=(",", ":")))
        gc.callbacks.remove(on_gc)
        if gc_policy == "cli":
            gc.unfreeze()
            gc.set_threshold(*thresholds)
        tg.cancel_scope.cancel()
    full = [ms for generation, ms in gc_pauses if generation == 2]
    return {
        "files": files,
        "gc": gc_policy,
        "seconds": seconds,
        "file_changes": changes[0],
        "status_ms": _percentiles(status_ms),
        "server_ms": _percentiles(server),
        "loop_lag_ms": _percentiles(lags),
        "host_gc": {
            "collections": len(gc_pauses),
            "full": len(full),
            "max_ms": round(max((ms for _, ms in gc_pauses), default=0.0), 2),
            "max_full_ms": round(max(full, default=0.0), 2),
        },
        "cli_seconds": cli_seconds,
        "answer_bytes": answer_bytes,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": _percentiles(status_ms)["p99"] < TARGET_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the client asks (default 30)")
    parser.add_argument("--cli-runs", type=int, default=3, help="`plugin-host status` processes (default 3)")
    parser.add_argument(
        "--gc",
        choices=("library", "cli"),
        default="library",
        help="library: CPython's collector defaults; cli: as `plugin-host run` sets it (default library)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sts"))
    try:
        result = anyio.run(measure, root, args.files, args.seconds, args.cli_runs, args.gc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        s, h, lag = result["status_ms"], result["server_ms"], result["loop_lag_ms"]
        print(f"status of {result['files']} fs-device files, one change a second, {result['seconds']:.0f} s:")
        print(f"  round trip (query_status): p50 {s['p50']} ms, p99 {s['p99']} ms, max {s['max']} ms ({s['n']} asks)")
        print(f"  host's part              : p50 {h['p50']} ms, p99 {h['p99']} ms, max {h['max']} ms")
        print(f"  event-loop lag           : p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms")
        g = result["host_gc"]
        print(f"  host's garbage collector : {g['collections']} runs, longest {g['max_ms']} ms; {g['full']} full")
        print(f"  plugin-host status --json: {result['cli_seconds']} s; answer {result['answer_bytes']} bytes")
        print(f"  target p99 < {TARGET_P99_MS:.0f} ms: {'met' if result['target_met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
