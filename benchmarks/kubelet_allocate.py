"""Kubernetes device plugin API v1beta1: Allocate round trip and ListAndWatch update latency, grpclib vs grpc.aio.

Two servers of one resource with ``--devices`` devices (each with a mount and an env) run in this process on Unix
sockets:

- grpclib: the framework's own :class:`~plugin_host.kubelet.DeviceTypeServer` (default Allocate, full-list
  ListAndWatch) — what plugin-host ships;
- grpc.aio: a minimal servicer doing the same work (look the ids up, check health, merge mounts and envs; send the
  full list on every change), on stubs generated at run time by ``grpc_tools.protoc`` from ``proto/`` into a
  temporary directory.

The same grpc.aio client measures both (a compiled protobuf decoder, like kubelet's Go client, so the figures are
the servers'): ``--allocations`` sequential Allocate calls for one device each (p50/p99), and ``--updates`` health
flips of one device, each timed from the server-side update until the client holds the new full list. The sides
run alternately in the same process (``--rounds`` each, the round with the lowest Allocate p50 kept), so the
figures are comparable with each other only.

    python benchmarks/kubelet_allocate.py [--devices 1000] [--allocations 2000] [--updates 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import grpc

from plugin_host.kubelet import DeviceInfo, DeviceTypeServer, KubeletMount

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "k8s.io" / "kubelet" / "pkg" / "apis" / "deviceplugin" / "v1beta1" / "api.proto"
STUB_MODULE = "kubelet_v1beta1_bench"


def _devices(count: int, unhealthy: int | None = None) -> dict[str, DeviceInfo]:
    return {
        f"dev{i:05d}": DeviceInfo(
            state="Unhealthy" if i == unhealthy else "Healthy",
            mounts=(KubeletMount(container_path=f"/dev-data/{i}", host_path=f"/srv/dev{i}"),),
            envs={f"DEV_{i}": "1"},
        )
        for i in range(count)
    }


def _generate_grpc_stubs(out: Path) -> tuple[Any, Any]:
    """Compile the v1beta1 proto with grpc_tools into ``out`` and import the message and service modules."""
    shutil.copy(PROTO, out / f"{STUB_MODULE}.proto")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{out}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"{STUB_MODULE}.proto",
        ],
        check=True,
    )
    sys.path.insert(0, os.fspath(out))
    return importlib.import_module(f"{STUB_MODULE}_pb2"), importlib.import_module(f"{STUB_MODULE}_pb2_grpc")


class _AioPlugin:
    """The grpc.aio side: the same data and work as the framework's default Allocate and ListAndWatch."""

    def __init__(self, pb2: Any, devices: dict[str, DeviceInfo]) -> None:
        self._pb2 = pb2
        self.devices = devices
        self._changed = asyncio.Event()

    def update(self, devices: dict[str, DeviceInfo]) -> None:
        self.devices = devices
        self._changed.set()
        self._changed = asyncio.Event()

    async def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:
        return self._pb2.DevicePluginOptions()

    async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        while True:
            changed = self._changed
            devices = self.devices
            yield self._pb2.ListAndWatchResponse(
                devices=[self._pb2.Device(ID=i, health=devices[i].state) for i in sorted(devices)]
            )
            await changed.wait()

    async def GetPreferredAllocation(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no preferred allocation")

    async def PreStartContainer(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no pre-start")

    async def Allocate(self, request: Any, context: Any) -> Any:
        devices = self.devices
        responses = []
        for container in request.container_requests:
            mounts: list[Any] = []
            envs: dict[str, str] = {}
            for dev_id in container.devices_ids:
                info = devices.get(dev_id)
                if info is None or info.state != "Healthy":
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"device {dev_id!r} cannot be allocated")
                assert info is not None
                mounts.extend(
                    self._pb2.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
                    for m in info.mounts
                )
                envs.update(info.envs)
            responses.append(self._pb2.ContainerAllocateResponse(envs=envs, mounts=mounts))
        return self._pb2.AllocateResponse(container_responses=responses)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def _measure(
    socket_path: Path,
    stubs: tuple[Any, Any],
    count: int,
    allocations: int,
    updates: int,
    update: Callable[[dict[str, DeviceInfo]], None],
) -> dict[str, Any]:
    """Allocate latency and ListAndWatch update latency of the server on ``socket_path``.

    The client is grpc.aio, like kubelet's Go client a compiled protobuf decoder, so the figures are the server's.
    """
    pb2, pb2_grpc = stubs
    ids = [f"dev{i:05d}" for i in range(count)]
    async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
        stub = pb2_grpc.DevicePluginStub(channel)

        def request(i: int) -> Any:
            return pb2.AllocateRequest(container_requests=[pb2.ContainerAllocateRequest(devices_ids=[ids[i % count]])])

        for i in range(min(100, allocations)):  # warm-up
            await stub.Allocate(request(i))
        samples: list[float] = []
        started = time.perf_counter()
        for i in range(allocations):
            message = request(i * 7)
            t0 = time.perf_counter()
            reply = await stub.Allocate(message)
            samples.append(time.perf_counter() - t0)
            assert len(reply.container_responses) == 1
        allocate_seconds = time.perf_counter() - started

        call = stub.ListAndWatch(pb2.Empty())
        first = await call.read()
        assert len(first.devices) == count
        latencies: list[float] = []
        for k in range(updates):
            unhealthy = k % count
            devices = _devices(count, unhealthy=unhealthy)  # built before the clock starts: only serving is timed
            t0 = time.perf_counter()
            update(devices)
            while (await call.read()).devices[unhealthy].health != "Unhealthy":
                pass
            latencies.append(time.perf_counter() - t0)
        call.cancel()
    return {
        "allocate": {**_percentiles(samples), "calls_per_s": round(allocations / allocate_seconds)},
        "list_and_watch_update": _percentiles(latencies),
    }


async def _grpclib_side(
    tmp: Path, stubs: tuple[Any, Any], count: int, allocations: int, updates: int
) -> dict[str, Any]:
    # No kubelet listens: the server only polls for kubelet.sock, once a second, while it is measured.
    async with DeviceTypeServer(
        "example.com", "bench", plugin_dir=tmp, cdi_dir=tmp / "cdi", watch_interval=1.0
    ) as server:
        server.update(_devices(count))
        return await _measure(server.socket_path, stubs, count, allocations, updates, server.update)


async def _grpcio_side(tmp: Path, stubs: tuple[Any, Any], count: int, allocations: int, updates: int) -> dict[str, Any]:
    pb2, pb2_grpc = stubs
    plugin = _AioPlugin(pb2, _devices(count))
    server = grpc.aio.server()
    pb2_grpc.add_DevicePluginServicer_to_server(plugin, server)
    path = tmp / "grpcio.sock"
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    try:
        return await _measure(path, stubs, count, allocations, updates, plugin.update)
    finally:
        await server.stop(grace=None)


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server; the best is kept")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ph-bench-"))
    try:
        stubs = tmp / "stubs"
        stubs.mkdir()
        generated = await anyio.to_thread.run_sync(_generate_grpc_stubs, stubs)
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            ours.append(await _grpclib_side(tmp, generated, args.devices, args.allocations, args.updates))
            theirs.append(await _grpcio_side(tmp, generated, args.devices, args.allocations, args.updates))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best_ours = min(ours, key=lambda r: r["allocate"]["p50_ms"])
    best_theirs = min(theirs, key=lambda r: r["allocate"]["p50_ms"])
    result = {
        "devices": args.devices,
        "allocations": args.allocations,
        "updates": args.updates,
        "rounds": args.rounds,
        "grpcio_version": grpc.__version__,
        "grpclib": best_ours,
        "grpcio_aio": best_theirs,
        "allocate_p50_ratio_grpclib_over_grpcio": round(
            best_ours["allocate"]["p50_ms"] / best_theirs["allocate"]["p50_ms"], 2
        ),
        "update_p50_ratio_grpclib_over_grpcio": round(
            best_ours["list_and_watch_update"]["p50_ms"] / best_theirs["list_and_watch_update"]["p50_ms"], 2
        ),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.devices} devices, {args.allocations} Allocate calls, {args.updates} ListAndWatch updates")
    for label, side in (("grpclib (ours)", best_ours), ("grpc.aio", best_theirs)):
        alloc, upd = side["allocate"], side["list_and_watch_update"]
        print(
            f"  {label:15} Allocate p50 {alloc['p50_ms']:.3f} ms  p99 {alloc['p99_ms']:.3f} ms"
            f"  ({alloc['calls_per_s']:,}/s);  update p50 {upd['p50_ms']:.3f} ms  p99 {upd['p99_ms']:.3f} ms"
        )
    print(f"  Allocate p50 ratio grpclib/grpc.aio: {result['allocate_p50_ratio_grpclib_over_grpcio']}")
    print(f"  update p50 ratio grpclib/grpc.aio:   {result['update_p50_ratio_grpclib_over_grpcio']}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
