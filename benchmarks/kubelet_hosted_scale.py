"""Kubernetes device plugin hosted by the registration server: one ListAndWatch message with many devices.

A plugin in a child process serves ``--devices`` devices (one ListAndWatch message, written by the framework's
encoder so the plugin itself is cheap) on a Unix socket and registers with a :class:`KubeletRegistrationServer`
running here with a :class:`~plugin_host.device.DeviceManager`, as ``kubelet_server {}`` runs it. Measured here:

- ``handle_seconds``: from the moment the plugin says it is registering until the device manager's snapshot shows
  every device (decode, conversion, duplicate collapse, group check, subscribers and a snapshot);
- ``max_loop_gap_seconds``: the longest time a ticker task (sleeping 1 ms at a time) waited beyond its sleep while
  that happened: how long the event loop was blocked at most;
- ``max_gc_pause_seconds`` and ``gc_pauses``: CPython's cyclic garbage collector, timed through ``gc.callbacks``.
  Creating 100,000 devices (a few tracked objects each) triggers several full collections, each walking the whole
  heap with the GIL held, in whichever thread allocates: they are most of what remains of the loop gap with
  CPython's defaults (``--gc library``, an application embedding the library). ``--gc cli`` sets the collector as
  ``plugin-host run`` does once the host runs (:func:`plugin_host.cli.settle_gc`: start-up objects frozen, full
  collections ten times rarer).

    python benchmarks/kubelet_hosted_scale.py [--devices 100000] [--gc library|cli] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from plugin_host.cli import settle_gc
from plugin_host.device import DeviceManager
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer
from plugin_host.registry import Registry

RESOURCE = "example.com/scale"

# The plugin: a grpclib server answering ListAndWatch with pre-encoded bytes, then Register.
_PLUGIN = r"""
import os, sys, anyio
from grpclib.const import Cardinality, Handler
from grpclib.server import Server
from plugin_host._proto import v1beta1 as wire
from plugin_host.kubelet.export._list_encode import encode_device

directory, count = sys.argv[1], int(sys.argv[2])
parts = []
for i in range(count):
    device = encode_device(f"dev-{i:06d}", "Healthy", None)
    size = len(device)
    length = bytes([size]) if size < 0x80 else bytes([(size & 0x7F) | 0x80, size >> 7])
    parts.append(b"\x0a" + length + device)
payload = b"".join(parts)

class Raw:
    def __init__(self, data=b""):
        self.data = data
    def SerializeToString(self):
        return self.data
    @classmethod
    def FromString(cls, data):
        return cls(data)

class Plugin:
    def __mapping__(self):
        svc = "/v1beta1.DevicePlugin"
        return {
            svc + "/GetDevicePluginOptions": Handler(self.options, Cardinality.UNARY_UNARY, Raw, Raw),
            svc + "/ListAndWatch": Handler(self.list, Cardinality.UNARY_STREAM, Raw, Raw),
        }
    async def options(self, stream):
        await stream.recv_message()
        await stream.send_message(Raw(b""))
    async def list(self, stream):
        await stream.recv_message()
        await stream.send_message(Raw(payload))
        await anyio.sleep_forever()

async def main():
    server = Server([Plugin()])
    await server.start(path=os.path.join(directory, "scale.sock"))
    from grpclib.client import Channel
    channel = Channel(path=os.path.join(directory, "kubelet.sock"))
    print("registering", flush=True)
    await wire.RegistrationStub(channel).register(
        wire.RegisterRequest(version="v1beta1", endpoint="scale.sock", resource_name=sys.argv[3]), timeout=600
    )
    channel.close()
    await anyio.sleep_forever()

anyio.run(main)
"""


async def measure(devices: int, gc_policy: str = "library") -> dict[str, Any]:
    """Run the plugin and the server; the figures of one registration with ``devices`` devices.

    ``gc_policy`` ``cli``: the collector is set as ``plugin-host run`` sets it once the host runs
    (:func:`plugin_host.cli.settle_gc`); ``library``: CPython's defaults, as in an application embedding the library.
    """
    directory = Path(tempfile.mkdtemp(prefix="khs"))
    gaps: list[float] = [0.0]
    pauses: list[float] = []
    started = [0.0]
    thresholds = gc.get_threshold()

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    async with (
        Registry() as registry,
        DeviceManager(stats_interval=None) as manager,
        KubeletRegistrationServer(directory, registry, devices=manager),
        manager.subscribe() as changes,
        anyio.create_task_group() as tg,
    ):

        async def ticker() -> None:
            while True:
                before = time.perf_counter()
                await anyio.sleep(0.001)
                gaps[0] = max(gaps[0], time.perf_counter() - before - 0.001)

        process = await anyio.open_process(
            [sys.executable, "-c", _PLUGIN, os.fspath(directory), str(devices), RESOURCE],
            stdout=subprocess.PIPE,
            stderr=None,
        )
        try:
            assert process.stdout is not None
            line = await process.stdout.receive()
            if not line.startswith(b"registering"):
                raise RuntimeError(f"the plugin said {line!r}")
            gaps[0] = 0.0
            pauses.clear()
            if gc_policy == "cli":
                settle_gc()
            gc.callbacks.append(on_gc)
            tg.start_soon(ticker)
            start = time.perf_counter()
            async for _change in changes:
                snapshot = manager.snapshot()
                plugin = snapshot.plugin(RESOURCE)
                if plugin is not None and plugin.groups and len(plugin.groups[0].devices) == devices:
                    break
            handled = time.perf_counter() - start
            gc.callbacks.remove(on_gc)
            tg.cancel_scope.cancel()
        finally:
            process.terminate()
            await process.wait()
    if gc_policy == "cli":
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return {
        "devices": devices,
        "gc": gc_policy,
        "handle_seconds": round(handled, 4),
        "max_loop_gap_seconds": round(gaps[0], 4),
        "max_gc_pause_seconds": round(max(pauses, default=0.0), 4),
        "gc_pauses": len(pauses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--gc",
        choices=("library", "cli"),
        default="library",
        help="library: CPython's collector defaults; cli: as `plugin-host run` sets it (default library)",
    )
    args = parser.parse_args()
    result = anyio.run(measure, args.devices, args.gc)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['devices']} devices: handled in {result['handle_seconds']:.3f} s,"
            f" event loop blocked at most {result['max_loop_gap_seconds'] * 1000:.1f} ms"
            f" (longest garbage collection {result['max_gc_pause_seconds'] * 1000:.1f} ms)"
        )


if __name__ == "__main__":
    main()
