"""An agent embedding PluginHost: start it, watch device changes, reserve a device, stop.

Run from the repository root: ``python examples/embed_agent.py`` (uses examples/host.hcl; state goes to state/).
"""

from __future__ import annotations

import logging

import anyio

from plugin_host import HostConfig, PluginHost
from plugin_host.device import PluginChange, SnapshotChange


async def main() -> None:
    """Run the host from examples/host.hcl until a device shows up, reserve it, print the status."""
    config = HostConfig.from_hcl_file("examples/host.hcl")
    async with PluginHost(config) as host:
        with anyio.fail_after(10):
            async with host.devices.subscribe() as changes:
                async for change in changes:
                    if isinstance(change, SnapshotChange):
                        print("snapshot:", [p.name for p in change.snapshot.plugins])
                    elif isinstance(change, PluginChange) and change.plugin is not None:
                        for group in change.plugin.groups:
                            health = {d.id: "healthy" if d.healthy else "unhealthy" for d in group.devices}
                            print(f"{change.name}: {group.id} {health}")
                    groups = host.devices.snapshot().groups
                    if groups and groups[0].devices:
                        break
        group = host.devices.snapshot().groups[0]
        reservation = await host.devices.reserve(group.id, [group.devices[0].id])
        print("reserved", group.devices[0].id, "->", [m.host_path for m in reservation.mounts], reservation.envs)
        print("status:", (await host.status()).model_dump_json())


if __name__ == "__main__":
    # The embedding application owns logging; the library only emits records.
    logging.basicConfig(level=logging.WARNING)
    anyio.run(main)
