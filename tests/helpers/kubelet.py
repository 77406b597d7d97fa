"""A fake kubelet and a DeviceTypeServer serving GPU-like devices, for the kubelet export tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from plugin_host.kubelet import (
    CdiContainerEdits,
    CdiDevice,
    CdiSpec,
    DeviceInfo,
    DeviceTypeServer,
    KubeletDeviceSpec,
    KubeletMount,
)
from plugin_host.testing.kubelet import FakeKubelet


@asynccontextmanager
async def serving(
    plugin_dir: Path,
    devices: dict[str, DeviceInfo] | None = None,
    *,
    hooks: object | None = None,
    cdi_dir: Path | None = None,
    **options: Any,
) -> AsyncIterator[DeviceTypeServer]:
    server = DeviceTypeServer(
        "example.com",
        "gpu",
        hooks=hooks,
        plugin_dir=plugin_dir,
        cdi_dir=cdi_dir or plugin_dir / "cdi",
        **options,
    )
    server.update(DEVICES if devices is None else devices)
    async with server:
        yield server


RESOURCE = "example.com/gpu"


WAIT = 5.0


def gpu(n: int, **kwargs: Any) -> DeviceInfo:
    return DeviceInfo(
        nodes=(KubeletDeviceSpec(container_path=f"/dev/gpu{n}", host_path=f"/dev/gpu{n}"),),
        mounts=(KubeletMount(container_path="/usr/lib/gpu", host_path="/opt/gpu/lib", read_only=True),),
        envs={f"GPU{n}": "on"},
        annotations={f"gpu{n}": "yes"},
        **kwargs,
    )


@asynccontextmanager
async def kubelet_and_server(
    short_tmp: Path, devices: dict[str, DeviceInfo] | None = None, **kwargs: Any
) -> AsyncIterator[tuple[FakeKubelet, DeviceTypeServer]]:
    async with FakeKubelet(short_tmp) as kubelet, serving(short_tmp, devices, **kwargs) as server:
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(RESOURCE)
        yield kubelet, server


def cdi_gpu(n: int, device: str) -> DeviceInfo:
    spec = CdiSpec(
        kind="example.com/gpu",
        devices=(CdiDevice(name=device, container_edits=CdiContainerEdits(env=(f"CDI_{device.upper()}=1",))),),
    )
    return DeviceInfo(cdi_spec=spec)


DEVICES = {"g0": gpu(0), "g1": gpu(1), "sick": gpu(2, state="Unhealthy")}
