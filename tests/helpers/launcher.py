"""Launching plugins in tests: an fs-device plugin executable, its spec, and a launcher run to a state."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from plugin_host.device import DeviceManager
from plugin_host.loader.launcher import LaunchState, LaunchStatus, PluginLauncher, PluginSpec, plugin_specs_from_dir
from plugin_host.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def write_plugin(plugin_dir: Path, name: str, body: str, *, mode: int = 0o755) -> Path:
    """An executable Python script in plugin_dir."""
    path = plugin_dir / name
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(mode)
    return path


def write_fsdevice(plugin_dir: Path, name: str = "fsdev") -> Path:
    """A wrapper that execs ``python -m plugin_host.plugins.fsdevice``."""
    body = (
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"os.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'plugin_host.plugins.fsdevice'])"
    )
    return write_plugin(plugin_dir, name, body)


def running(status: LaunchStatus) -> bool:
    """The plugin runs."""
    return status.state is LaunchState.RUNNING


@asynccontextmanager
async def launched(
    specs: list[PluginSpec], *, state: object = None, **kwargs: float
) -> AsyncIterator[tuple[PluginLauncher, DeviceManager, Registry]]:
    """A registry, a device manager and a launcher feeding it."""
    async with Registry() as registry, DeviceManager(registry=registry, stats_interval=None) as devices:
        options: dict[str, float] = {"start_timeout": 10.0, "backoff_initial": 30.0, "backoff_max": 30.0}
        options.update(kwargs)
        async with PluginLauncher(specs, devices=devices, state=state, **options) as launcher:  # type: ignore[arg-type]
            yield launcher, devices, registry


def fs_spec(plugin_dir: Path, devices_dir: Path) -> list[PluginSpec]:
    write_fsdevice(plugin_dir)
    for device in ("a", "b"):
        (devices_dir / device).write_text(device)
    return plugin_specs_from_dir(plugin_dir, {"fsdev": ((), {"dir": str(devices_dir), "list_period": "1s"})})


async def wait_devices(devices: DeviceManager, count: int) -> None:
    async with devices.subscribe() as changes:
        if sum(len(g.devices) for p in devices.snapshot().plugins for g in p.groups) >= count:
            return
        async for _ in changes:
            if sum(len(g.devices) for p in devices.snapshot().plugins for g in p.groups) >= count:
                return
