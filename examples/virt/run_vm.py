"""Boot a VM with the virt driver, wait for it to power off (or stop it after a while), then remove it.

    python examples/virt/run_vm.py /var/lib/virt/images/debian-12-genericcloud-amd64.qcow2 --seconds 120

Needs root (or a libvirt URI you may use), qemu, a running libvirtd and ``pip install -e '.[virt]'``.
"""

from __future__ import annotations

import argparse
import os

import anyio

from plugin_host.driver.api import (
    AllocatedMemoryResources,
    AllocatedTaskResources,
    LinuxResources,
    Resources,
    TaskConfig,
)
from plugin_host.plugins.virt import VirtConfig, VirtDriver


async def main(image: str, seconds: float, uri: str) -> None:
    config = VirtConfig(emulator={"uri": uri}, data_dir="/var/lib/virt", image_paths=(os.path.dirname(image),))
    task = TaskConfig(
        id="example-alloc/web/1",
        name="web",
        resources=Resources(
            nomad_resources=AllocatedTaskResources(memory=AllocatedMemoryResources(memory_mb=1024)),
            linux_resources=LinuxResources(cpuset_cpus="0"),
        ),
        driver_config={
            "image": image,
            "use_thin_copy": True,
            "primary_disk_size": 4096,
            "hostname": "web",
            "cmds": ["echo hello from the virt driver > /dev/console"],
        },
    )
    async with VirtDriver(config) as driver:
        handle, _ = await driver.start_task(task)
        print("started:", handle.driver_state.decode())
        with anyio.move_on_after(seconds):
            print("exited:", await driver.wait_task(task.id))
        await driver.stop_task(task.id, timeout=30)  # ACPI shutdown, destroyed after 30 s
        print("result:", await driver.wait_task(task.id))
        await driver.destroy_task(task.id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="disk image to boot (its directory becomes the allow-list)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to let it run before stopping it")
    parser.add_argument("--uri", default="qemu:///system", help="libvirt URI")
    args = parser.parse_args()
    anyio.run(main, os.path.abspath(args.image), args.seconds, args.uri)
