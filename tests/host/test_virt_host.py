"""PluginHost with the built-in virt driver (``plugin "virt" {}``) on libvirt's test driver: a task started through
``host.drivers`` is recovered by the next host from the state file before it is ready."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import libvirt
import pytest
from helpers.virt import make_image, make_layout, task_config

from plugin_host.driver.api import TaskState
from plugin_host.errors import ConfigError
from plugin_host.host import PluginHost
from plugin_host.host_config import HostConfig

pytestmark = pytest.mark.anyio


def host_config(root: Path, data_dir: Path, images: Path, **extra: object) -> HostConfig:
    """A host with only the virt driver, on libvirt's test driver."""
    config = {"emulator": [{"uri": "test:///default"}], "data_dir": str(data_dir), "image_paths": [str(images)]}
    return HostConfig.from_mapping(
        {"state_dir": str(root / "st"), "plugins": {"virt": {"config": {**config, **extra}}}}
    )


async def test_a_vm_started_through_the_host_is_recovered_by_the_next_host(short_tmp: Path) -> None:
    """host.drivers starts a VM with the built-in virt driver; the next host on the same state file tracks it as
    running before it is ready, and can stop and destroy it."""
    layout = make_layout(short_tmp)
    image = make_image(layout.images / "base.img")
    task_id = f"alloc-1/web/{uuid.uuid4().hex[:8]}"
    # test:///default keeps its domains only while some connection to it is open.
    keeper = libvirt.open("test:///default")
    try:
        config = host_config(short_tmp, layout.data_dir, layout.images)
        async with PluginHost(config) as host:
            assert "virt" in host.drivers.driver_names()
            await host.drivers.start_task("virt", task_config(layout, task_id, image=str(image), use_thin_copy=True))
        async with PluginHost(config) as host:
            assert host.drivers.tasks() == {task_id: "virt"}
            assert (await host.drivers.inspect_task(task_id)).state is TaskState.RUNNING
            await host.drivers.stop_task(task_id, timeout=5)
            with anyio.fail_after(5):
                assert (await host.drivers.wait_task(task_id)).exit_code == 0
            await host.drivers.destroy_task(task_id)
        assert layout.data_files() == []
    finally:
        keeper.close()


def test_bad_virt_config_fails_at_load_naming_the_plugin(short_tmp: Path) -> None:
    """An unknown key in the virt plugin's config block is a ConfigError naming the plugin and the key."""
    with pytest.raises(ConfigError, match=r"plugin \"virt\" config: unknown key 'bogus'"):
        host_config(short_tmp, short_tmp / "d", short_tmp / "i", bogus=1)


async def test_host_stop_shuts_the_builtin_driver_down(short_tmp: Path) -> None:
    """Leaving the host calls the built-in driver's shutdown(): its event streams end (VMs keep running)."""
    layout = make_layout(short_tmp)
    ended = anyio.Event()

    async def follow(events: AsyncIterator[object]) -> None:
        async for _ in events:
            pass
        ended.set()

    async with anyio.create_task_group() as tg:
        async with PluginHost(host_config(short_tmp, layout.data_dir, layout.images)) as host:
            tg.start_soon(follow, host.drivers.driver("virt").task_events())
            assert not ended.is_set()
        with anyio.fail_after(5):
            await ended.wait()
