"""Kubernetes device plugin API v1beta1: Allocate round trip and ListAndWatch update latency, as kubelet sees them.

kubelet is a Go program, so the client is one: ``kubeletbench client`` (benchmarks/go/kubeletbench, built from
Debian's Go packages by benchmarks/kubeletbench_build.py) runs in its own process, dials the plugin's Unix socket
as kubelet's devicemanager does, reads the first ListAndWatch message, times ``--allocations`` sequential Allocate
calls of one device each (p50/p99), then ``--updates`` ListAndWatch updates: for each it asks the server, through a
FIFO, to mark one device Unhealthy and times until the stream shows it. In the same run, against:

- ``plugin_host``: the framework's own :class:`~plugin_host.kubelet.DeviceTypeServer` (grpclib; default Allocate,
  full-list ListAndWatch), in this process;
- ``go``: ``kubeletbench server``, a minimal Go device plugin doing the same work (look the ids up, check health,
  merge mounts and envs), like generic-device-plugin, in its own process;
- ``grpcio_aio``: a grpc.aio servicer doing the same work, in its own process (this script with ``--serve-grpcio``;
  stubs generated at run time by ``grpc_tools.protoc`` from ``proto/``), so grpc's threads never share a GIL
  with the client or with our server;
- ``fsdevice_exported``: fs-device over ``--devices`` files, exported the way the host's ``kubelet {}`` block does it
  (DeviceManager -> :class:`~plugin_host.kubelet.DeviceManagerScanner` -> Manager): Allocate goes kubelet -> device
  manager -> fs-device ``reserve`` -> back. Allocate only;
- ``fsdevice_adapter``: the same plugin through :class:`~plugin_host.kubelet.DevicePluginScanner`. Allocate only.

The sides run one after another, ``--rounds`` times alternately; each side's round with the lowest Allocate p50 is
kept. ``--profile`` runs cProfile over this process (the servers here; the Go client is another process) for the
in-process sides and prints the top functions to stderr.

    python benchmarks/kubelet_allocate.py [--devices 1000] [--allocations 2000] [--updates 200] [--json] [--profile]

Without Go the script says which Debian packages to install (tools/setup-test-env installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kubeletbench_build import MissingToolchain, build_kubeletbench

from plugin_host.kubelet import DeviceInfo, DeviceTypeServer, KubeletMount

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "k8s.io" / "kubelet" / "pkg" / "apis" / "deviceplugin" / "v1beta1" / "api.proto"
STUB_MODULE = "kubelet_v1beta1_bench"
SIDES = ("plugin_host", "go", "grpcio_aio", "fsdevice_exported", "fsdevice_adapter")
_IN_PROCESS = ("plugin_host", "fsdevice_exported", "fsdevice_adapter")

Update = Callable[[Mapping[str, DeviceInfo]], None]


# --- the devices and the update FIFO ----------------------------------------------------------------------------


def _device(i: int, state: str = "Healthy") -> DeviceInfo:
    return DeviceInfo(
        state=state,
        mounts=(KubeletMount(container_path=f"/dev-data/{i}", host_path=f"/srv/dev{i}"),),
        envs={f"DEV_{i}": "1"},
    )


class _Devices:
    """Healthy devices ``dev00000``..; :meth:`with_unhealthy` is the set with one of them Unhealthy."""

    def __init__(self, count: int) -> None:
        self.ids = [f"dev{i:05d}" for i in range(count)]
        self.healthy = {dev_id: _device(i) for i, dev_id in enumerate(self.ids)}

    def with_unhealthy(self, index: int) -> dict[str, DeviceInfo]:
        devices = dict(self.healthy)
        devices[self.ids[index]] = _device(index, "Unhealthy")
        return devices


def _follow_fifo(path: Path, devices: _Devices, update: Update) -> Callable[[], None]:
    """Read device indexes from the FIFO at ``path`` on the running loop; each line serves that device Unhealthy.

    Returns the function that stops reading. Opened read-write, so the FIFO never reads end-of-file between writers.
    """
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    pending = b""

    def readable() -> None:
        nonlocal pending
        pending += os.read(fd, 65536)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            update(devices.with_unhealthy(int(line)))

    loop.add_reader(fd, readable)

    def stop() -> None:
        loop.remove_reader(fd)
        os.close(fd)

    return stop


# --- the Go client ----------------------------------------------------------------------------------------------


async def _go_client(binary: Path, socket_path: Path, args: argparse.Namespace, control: Path | None) -> dict[str, Any]:
    command = [
        os.fspath(binary),
        "client",
        f"-socket={socket_path}",
        f"-allocations={args.allocations}",
        f"-warmup={args.warmup}",
    ]
    if control is not None:
        command += [f"-updates={args.updates}", f"-control={control}"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kubeletbench client against {socket_path} failed: {err.decode().strip()}")
    result: dict[str, Any] = json.loads(out)
    return result


async def _wait_for(path: Path, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if path.exists():
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{path} did not appear within {seconds}s")


# --- the sides ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def _plugin_host_side(tmp: Path, devices: _Devices, control: Path) -> AsyncIterator[Path]:
    # No kubelet listens: the server only polls for kubelet.sock, once a second, while it is measured.
    async with DeviceTypeServer(
        "example.com", "bench", plugin_dir=tmp / "dp", cdi_dir=tmp / "cdi", watch_interval=1.0
    ) as server:
        server.update(devices.healthy)
        stop = _follow_fifo(control, devices, server.update)
        try:
            yield server.socket_path
        finally:
            stop()


@asynccontextmanager
async def _process_side(command: list[str], socket_path: Path) -> AsyncIterator[Path]:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    try:
        await _wait_for(socket_path)
        yield socket_path
    finally:
        process.terminate()
        await process.wait()
        socket_path.unlink(missing_ok=True)


def _write_device_files(directory: Path, count: int) -> None:
    directory.mkdir(exist_ok=True)
    for i in range(count):
        (directory / f"dev{i:05d}").write_text("x")


@asynccontextmanager
async def _fsdevice_side(tmp: Path, count: int, *, through_manager: bool) -> AsyncIterator[Path]:
    from plugin_host.device import DeviceManager
    from plugin_host.fsdevice import FsDevice
    from plugin_host.kubelet import DeviceManagerScanner, DevicePluginScanner, Manager

    directory = tmp / "fs-devices"
    _write_device_files(directory, count)
    plugin_dir = tmp / "dp-fs"
    options: dict[str, Any] = {"plugin_dir": plugin_dir, "cdi_dir": tmp / "cdi", "watch_interval": 1.0}
    socket_path = plugin_dir / "example.com-nomad-file-mock.sock"
    plugin = FsDevice({"dir": str(directory), "list_period": "1s"})
    if through_manager:
        async with DeviceManager() as manager:
            await manager.add_plugin("fs", plugin)
            async with Manager("example.com", DeviceManagerScanner(manager), **options):
                await _wait_for(socket_path)
                yield socket_path
    else:
        async with Manager("example.com", DevicePluginScanner(plugin), **options):
            await _wait_for(socket_path)
            yield socket_path


def _side(name: str, tmp: Path, binary: Path, devices: _Devices, control: Path) -> AbstractAsyncContextManager[Path]:
    count = len(devices.ids)
    if name == "plugin_host":
        return _plugin_host_side(tmp, devices, control)
    if name == "go":
        socket_path = tmp / "go.sock"
        return _process_side(
            [os.fspath(binary), "server", f"-socket={socket_path}", f"-devices={count}", f"-control={control}"],
            socket_path,
        )
    if name == "grpcio_aio":
        socket_path = tmp / "grpcio.sock"
        command = [sys.executable, os.path.abspath(__file__), "--serve-grpcio", f"{socket_path},{control},{count}"]
        return _process_side(command, socket_path)
    return _fsdevice_side(tmp, count, through_manager=name == "fsdevice_exported")


async def _run_side(
    name: str, tmp: Path, binary: Path, devices: _Devices, args: argparse.Namespace, profile: cProfile.Profile | None
) -> dict[str, Any]:
    control = tmp / f"{name}.fifo"
    control.unlink(missing_ok=True)
    os.mkfifo(control)
    updates = name in ("plugin_host", "go", "grpcio_aio") and args.updates > 0
    async with _side(name, tmp, binary, devices, control) as socket_path:
        if profile is not None:
            profile.enable()
        try:
            return await _go_client(binary, socket_path, args, control if updates else None)
        finally:
            if profile is not None:
                profile.disable()


# --- the grpc.aio server (its own process) ---------------------------------------------------------------------


def _serve_grpcio(spec: str) -> None:
    """``--serve-grpcio SOCKET,FIFO,COUNT``: serve the grpc.aio plugin until terminated."""
    import grpc  # only in this process: its threads never run next to the client or our server

    socket_path, control, count = spec.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="ph-grpcio-stubs-"))
    try:
        shutil.copy(PROTO, tmp / f"{STUB_MODULE}.proto")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{tmp}",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                f"{STUB_MODULE}.proto",
            ],
            check=True,
        )
        sys.path.insert(0, os.fspath(tmp))
        pb2 = importlib.import_module(f"{STUB_MODULE}_pb2")
        pb2_grpc = importlib.import_module(f"{STUB_MODULE}_pb2_grpc")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    devices = _Devices(int(count))

    class AioPlugin:
        """The same data and work as the framework's default Allocate and ListAndWatch."""

        def __init__(self) -> None:
            self.devices: Mapping[str, DeviceInfo] = devices.healthy
            self._changed = asyncio.Event()

        def update(self, new: Mapping[str, DeviceInfo]) -> None:
            self.devices = new
            self._changed.set()
            self._changed = asyncio.Event()

        async def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:
            return pb2.DevicePluginOptions()

        async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[Any]:
            while True:
                changed = self._changed
                current = self.devices
                yield pb2.ListAndWatchResponse(
                    devices=[pb2.Device(ID=i, health=current[i].state) for i in sorted(current)]
                )
                await changed.wait()

        async def GetPreferredAllocation(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no preferred allocation")

        async def PreStartContainer(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no pre-start")

        async def Allocate(self, request: Any, context: Any) -> Any:
            current = self.devices
            responses = []
            for container in request.container_requests:
                mounts: list[Any] = []
                envs: dict[str, str] = {}
                for dev_id in container.devices_ids:
                    info = current.get(dev_id)
                    if info is None or info.state != "Healthy":
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"device {dev_id!r} cannot be allocated")
                    assert info is not None
                    mounts.extend(
                        pb2.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
                        for m in info.mounts
                    )
                    envs.update(info.envs)
                responses.append(pb2.ContainerAllocateResponse(envs=envs, mounts=mounts))
            return pb2.AllocateResponse(container_responses=responses)

    async def serve() -> None:
        plugin = AioPlugin()
        server = grpc.aio.server()
        pb2_grpc.add_DevicePluginServicer_to_server(plugin, server)
        server.add_insecure_port(f"unix:{socket_path}")
        await server.start()
        _follow_fifo(Path(control), devices, plugin.update)
        await server.wait_for_termination()

    asyncio.run(serve())


# --- main -------------------------------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _profile_report(profile: cProfile.Profile, side: str) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return f"=== cProfile of the {side} side (server only) ===\n{out.getvalue()}"


async def main(args: argparse.Namespace) -> None:
    try:
        binary = await asyncio.to_thread(build_kubeletbench)
    except MissingToolchain as exc:
        sys.exit(f"kubelet_allocate: {exc}")
    sides = [s for s in SIDES if s in args.sides.split(",")]
    devices = _Devices(args.devices)
    tmp = Path(tempfile.mkdtemp(prefix="ph-kbench-", dir="/tmp"))  # short: Unix socket paths are limited
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    profiles = {side: cProfile.Profile() for side in sides if args.profile and side in _IN_PROCESS}
    try:
        for _ in range(args.rounds):
            for side in sides:
                results[side].append(await _run_side(side, tmp, binary, devices, args, profiles.get(side)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = {side: min(runs, key=lambda r: r["allocate"]["p50_ms"]) for side, runs in results.items()}
    ratios: dict[str, float | None] = {}
    for side in sides:
        for peer in ("go", "grpcio_aio"):
            if side != peer and peer in best and side not in ("go", "grpcio_aio"):
                ratios[f"{side}_over_{peer}_allocate_p50"] = _ratio(
                    best[side]["allocate"]["p50_ms"], best[peer]["allocate"]["p50_ms"]
                )
                if "list_and_watch_update" in best[side] and "list_and_watch_update" in best[peer]:
                    ratios[f"{side}_over_{peer}_update_p50"] = _ratio(
                        best[side]["list_and_watch_update"]["p50_ms"], best[peer]["list_and_watch_update"]["p50_ms"]
                    )
    result = {
        "devices": args.devices,
        "allocations": args.allocations,
        "updates": args.updates,
        "rounds": args.rounds,
        "client": "kubeletbench (Go, grpc-go)",
        "sides": best,
        "ratios": ratios,
    }
    for side, profile in profiles.items():
        print(_profile_report(profile, side), file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.devices} devices, {args.allocations} Allocate calls, {args.updates} ListAndWatch updates,"
        f" Go client, best of {args.rounds}"
    )
    for side, figures in best.items():
        alloc = figures["allocate"]
        line = f"  {side:18} Allocate p50 {alloc['p50_ms']:.3f} ms  p99 {alloc['p99_ms']:.3f} ms"
        line += f"  ({figures['calls_per_s']:,}/s)"
        update = figures.get("list_and_watch_update")
        if update:
            line += f";  update p50 {update['p50_ms']:.3f} ms  p99 {update['p99_ms']:.3f} ms"
        print(line)
    for name, value in ratios.items():
        print(f"  {name}: {value}")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the best is kept")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process servers (to stderr)")
    parser.add_argument("--serve-grpcio", metavar="SOCKET,FIFO,COUNT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _parse(sys.argv[1:])
    if arguments.serve_grpcio:
        _serve_grpcio(arguments.serve_grpcio)
    else:
        asyncio.run(main(arguments))
