"""CSI supervision cost: the CsiManager's CPU per probe round over N plugins, and Probe round trips over a socket.

N minimal CSI plugins (Identity and the Node fingerprint calls) are served by a child process, each on its own Unix
socket, so the CPU measured here is the manager's side only: the registry, the manager's timers, grpclib and the
conversions of this process. The manager fingerprints every plugin, then probes each every ``--interval``
seconds; CPU time is taken over ``--rounds`` rounds once all are healthy. Round trips are sequential Probe calls of
one client to one plugin (HTTP/2 over a Unix socket, betterproto and the reply check included).

    python benchmarks/csi_probe.py [--plugins 100] [--interval 0.5] [--rounds 10] [--probes 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from plugin_host import PluginConnectionInfo, PluginInfo, Registry
from plugin_host.csi import CsiClient, CsiManager, CsiPluginServer, api
from plugin_host.csi import requests as req


class _BenchPlugin:
    """Just enough of a CSI node plugin to be fingerprinted and probed."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def get_plugin_info(self, request: req.GetPluginInfoRequest) -> api.GetPluginInfoResponse:
        return api.GetPluginInfoResponse(name=self._name, vendor_version="1.0.0")

    async def get_plugin_capabilities(
        self, request: req.GetPluginCapabilitiesRequest
    ) -> api.GetPluginCapabilitiesResponse:
        return api.GetPluginCapabilitiesResponse()

    async def probe(self, request: req.ProbeRequest) -> api.ProbeResponse:
        return api.ProbeResponse(ready=True)

    async def node_get_info(self, request: req.NodeGetInfoRequest) -> api.NodeGetInfoResponse:
        return api.NodeGetInfoResponse(node_id="bench-node")

    async def node_get_capabilities(self, request: req.NodeGetCapabilitiesRequest) -> api.NodeGetCapabilitiesResponse:
        return api.NodeGetCapabilitiesResponse()


def _socket(directory: Path, index: int) -> Path:
    return directory / f"p{index}.sock"


async def _serve(directory: Path, count: int) -> None:
    """The child: serve ``count`` plugins until terminated."""
    async with AsyncExitStack() as stack:
        for index in range(count):
            await stack.enter_async_context(CsiPluginServer(_BenchPlugin(f"bench-{index}"), _socket(directory, index)))
        print("ready", flush=True)
        await anyio.sleep_forever()


async def _round_trips(socket_path: Path, count: int) -> dict[str, float]:
    async with CsiClient(socket_path, timeout=5.0) as client:
        for _ in range(50):  # connect and warm up
            await client.probe()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await client.probe()
            samples.append(time.perf_counter() - start)
    samples.sort()
    return {
        "probe_rtt_p50_us": round(statistics.median(samples) * 1e6, 1),
        "probe_rtt_p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6, 1),
        "probes_per_s_sequential": round(count / sum(samples)),
    }


async def _supervise(directory: Path, plugins: int, interval: float, rounds: int) -> dict[str, Any]:
    async with Registry() as registry, CsiManager(registry, probe_interval=interval, call_timeout=5.0) as manager:
        async with manager.subscribe() as changes:
            start = time.perf_counter()
            for index in range(plugins):
                await registry.register_plugin(
                    PluginInfo(
                        name=f"bench-{index}",
                        type="csi-node",
                        alloc_id="bench",
                        connection_info=PluginConnectionInfo(socket_path=os.fspath(_socket(directory, index))),
                    )
                )
            healthy: set[str] = set()
            with anyio.fail_after(60):
                async for health in changes:
                    if health.healthy:
                        healthy.add(health.name)
                    if len(healthy) == plugins:
                        break
            fingerprinted = time.perf_counter() - start
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        await anyio.sleep(interval * rounds)
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - wall_start
        all_healthy = all(h.healthy for h in manager.snapshot())
    measured_rounds = wall / interval
    return {
        "fingerprint_all_s": round(fingerprinted, 3),
        "cpu_per_round_ms": round(cpu / measured_rounds * 1e3, 2),
        "cpu_per_probe_us": round(cpu / measured_rounds / plugins * 1e6, 1),
        "cpu_share_of_one_core": round(cpu / wall, 4),
        "all_healthy_after": all_healthy,
    }


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5, help="probe interval in seconds")
    parser.add_argument("--rounds", type=int, default=10, help="probe rounds to measure CPU over")
    parser.add_argument("--probes", type=int, default=2000, help="sequential probes for the round-trip figures")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args(argv)
    if args.serve is not None:
        await _serve(args.serve, args.plugins)
        return
    directory = Path(tempfile.mkdtemp(prefix="csi-bench-"))
    child = await anyio.open_process(
        [sys.executable, os.path.abspath(__file__), "--serve", os.fspath(directory), "--plugins", str(args.plugins)],
        stdin=subprocess.DEVNULL,
        stderr=None,
    )
    try:
        assert child.stdout is not None
        with anyio.fail_after(120):
            line = await child.stdout.receive()
        if not line.startswith(b"ready"):
            raise SystemExit(f"the plugin process did not start: {line!r}")
        rtt = await _round_trips(_socket(directory, 0), args.probes)
        supervision = await _supervise(directory, args.plugins, args.interval, args.rounds)
    finally:
        child.terminate()
        await child.wait()
        await child.aclose()
        shutil.rmtree(directory, ignore_errors=True)
    result = {"plugins": args.plugins, "interval_s": args.interval, "rounds": args.rounds, **supervision, **rtt}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.plugins} CSI node plugins in a child process, probed every {args.interval}s")
    print(f"  fingerprint all:        {supervision['fingerprint_all_s']} s")
    print(
        f"  CPU per probe round:    {supervision['cpu_per_round_ms']} ms  ({supervision['cpu_per_probe_us']} us/probe)"
    )
    print(f"  CPU share of one core:  {supervision['cpu_share_of_one_core']}")
    print(f"  Probe round trip:       p50 {rtt['probe_rtt_p50_us']} us, p99 {rtt['probe_rtt_p99_us']} us")
    print(f"  sequential probes/s:    {rtt['probes_per_s_sequential']}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
