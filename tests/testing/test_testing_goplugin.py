"""plugin_host.testing.goplugin: launch a plugin program as Nomad would and get a client for it."""

from __future__ import annotations

import sys
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER
from plugin_host.errors import PluginLaunchError
from plugin_host.testing.goplugin import launch_plugin, launched_device_plugin, launched_driver_plugin

pytestmark = pytest.mark.anyio


async def test_a_launched_device_plugin_answers_and_fingerprints(short_tmp: Path) -> None:
    """fs-device, launched by module, identifies itself, takes its config and lists the directory's files."""
    devices = short_tmp / "devices"
    devices.mkdir()
    (devices / "dev0").write_text("x")
    command = [sys.executable, "-m", "plugin_host.plugins.fsdevice"]
    with anyio.fail_after(60):
        async with launched_device_plugin(command, socket_dir=short_tmp) as client:
            assert (await client.plugin_info()).type == PLUGIN_TYPE_DEVICE
            await client.set_config({"dir": str(devices), "list_period": "1s"})
            async with aclosing(client.fingerprint()) as stream:
                async for response in stream:
                    if response.device_groups:
                        assert [d.id for d in response.device_groups[0].devices] == ["dev0"]
                        break


async def test_a_launched_driver_plugin_answers(short_tmp: Path) -> None:
    """raw-exec, launched by module, is a driver; the process is gone once the block ends."""
    command = [sys.executable, "-m", "plugin_host.plugins.rawexec"]
    with anyio.fail_after(60):
        async with launched_driver_plugin(command, socket_dir=short_tmp) as client:
            assert (await client.plugin_info()).type == PLUGIN_TYPE_DRIVER


async def test_a_program_without_a_handshake_is_a_launch_error() -> None:
    """A program that exits without printing a handshake line is refused, naming it."""
    with anyio.fail_after(30), pytest.raises(PluginLaunchError, match="before a handshake line"):
        async with launch_plugin([sys.executable, "-c", "print('hello', end='')"]):
            pass
