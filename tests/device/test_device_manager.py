"""DeviceManager: fingerprinting, restarts with backoff, stats, reservations, subscriptions and registry entries."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from plugin_host.base.api import PluginInfoResponse
from plugin_host.base.hclspec import Spec, obj
from plugin_host.device import (
    ContainerReservation,
    Device,
    DeviceChanges,
    DeviceGroup,
    DeviceGroupStats,
    DeviceManager,
    DeviceManagerSnapshot,
    DevicePluginClient,
    DevicePluginServer,
    DeviceStats,
    FingerprintResponse,
    PluginChange,
    PluginState,
    SnapshotChange,
    StatsResponse,
    StatValue,
)
from plugin_host.errors import ConfigError, DeviceError, InvalidPluginError, PluginNotFoundError
from plugin_host.registry import PluginConnectionInfo, PluginInfo, Registry

T = TypeVar("T")

END = None  # pushed into a fake stream: the plugin ends the stream


class Notifier:
    """Wakes waiters whenever something they may be waiting for changed."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def block_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            await self.block_until(predicate)


class FakePlugin:
    """A device plugin driven by the test: each item pushed is yielded, raised (an exception) or ends the stream."""

    def __init__(self, name: str = "fake", *, version: str = "1.2.3", plugin_type: str = "device") -> None:
        self.name = name
        self.version = version
        self.plugin_type = plugin_type
        self._fingerprints: deque[FingerprintResponse | Exception | None] = deque()
        self._stats: deque[StatsResponse | Exception | None] = deque()
        self.open_fingerprints = 0
        self.open_stats = 0
        self.fingerprint_calls = 0
        self.stats_calls = 0
        self.stats_acked = 0
        self.stats_intervals: list[float] = []
        self.reserved: list[list[str]] = []
        self.reserve_error: Exception | None = None
        self.changed = Notifier()

    def all_streams_open(self) -> bool:
        return self.open_fingerprints == 1 and self.open_stats == 1

    def push(self, item: FingerprintResponse | Exception | None) -> None:
        self._fingerprints.append(item)
        self.changed.notify()

    def push_stats(self, item: StatsResponse | Exception | None) -> None:
        self._stats.append(item)
        self.changed.notify()

    async def _take(self, queue: deque[T]) -> T:
        # A plugin waits for its next message as long as it takes, so no timeout here.
        await self.changed.block_until(lambda: bool(queue))
        return queue.popleft()

    async def plugin_info(self) -> PluginInfoResponse:
        return PluginInfoResponse(
            type=self.plugin_type, plugin_api_versions=("0.1.0",), plugin_version=self.version, name=self.name
        )

    async def config_schema(self) -> Spec:
        return obj({})

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        return None

    async def fingerprint(self) -> AsyncIterator[FingerprintResponse]:
        self.fingerprint_calls += 1
        self.open_fingerprints += 1
        self.changed.notify()
        try:
            while True:
                item = await self._take(self._fingerprints)
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.open_fingerprints -= 1
            self.changed.notify()

    async def stats(self, interval: float) -> AsyncIterator[StatsResponse]:
        self.stats_calls += 1
        self.open_stats += 1
        self.stats_intervals.append(interval)
        self.changed.notify()
        try:
            while True:
                item = await self._take(self._stats)
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
                # The consumer asked for the next item, so it has handled this one.
                self.stats_acked += 1
                self.changed.notify()
        finally:
            self.open_stats -= 1
            self.changed.notify()

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        if self.reserve_error is not None:
            raise self.reserve_error
        self.reserved.append(list(device_ids))
        return ContainerReservation(envs={"PLUGIN": self.name, "IDS": ",".join(device_ids)})


class ManualSleep:
    """Records each backoff delay; sleeps until released (``gated``) or returns at once."""

    def __init__(self, *, gated: bool) -> None:
        self.delays: list[float] = []
        self.gated = gated
        self.changed = Notifier()
        self._release = anyio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.changed.notify()
        if self.gated:
            await self._release.wait()
        else:
            await anyio.lowlevel.checkpoint()

    def release(self) -> None:
        self._release.set()
        self._release = anyio.Event()


def group(name: str = "gpu", *ids: str, vendor: str = "acme") -> DeviceGroup:
    devices = tuple(Device(id=i, healthy=True) for i in (ids or ("d1", "d2")))
    return DeviceGroup(vendor=vendor, type="gpu", name=name, devices=devices)


def fingerprint(*groups: DeviceGroup) -> FingerprintResponse:
    return FingerprintResponse(device_groups=groups)


def stat(value: int) -> DeviceStats:
    return DeviceStats(summary=StatValue(int_numerator_val=value, unit="C"), timestamp=datetime.now(UTC))


async def wait_snapshot(
    manager: DeviceManager, predicate: Callable[[DeviceManagerSnapshot], bool]
) -> DeviceManagerSnapshot:
    """The first snapshot (now or after a change) for which ``predicate`` holds."""
    with anyio.fail_after(5):
        async with manager.subscribe() as changes:
            async for _ in changes:
                snapshot = manager.snapshot()
                if predicate(snapshot):
                    return snapshot
    raise AssertionError("the manager shut down first")


def state_of(name: str, state: PluginState) -> Callable[[DeviceManagerSnapshot], bool]:
    def check(snapshot: DeviceManagerSnapshot) -> bool:
        plugin = snapshot.plugin(name)
        return plugin is not None and plugin.state is state

    return check


async def next_change(changes: DeviceChanges) -> SnapshotChange | PluginChange:
    with anyio.fail_after(5):
        return await changes.__anext__()


# --- fingerprint and snapshot ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_snapshot_lists_two_plugins_with_their_distinct_groups() -> None:
    """Each plugin's fingerprinted groups appear under that plugin, and snapshot.groups holds them all."""
    gpus, fpgas = FakePlugin("gpus"), FakePlugin("fpgas", version="2.0.0")
    gpus.push(fingerprint(group("gpu", "g1")))
    fpgas.push(fingerprint(group("fpga", "f1", "f2", vendor="xil")))
    async with DeviceManager(stats_interval=None) as manager:
        await manager.add_plugin("gpus", gpus)
        await manager.add_plugin("fpgas", fpgas)
        snapshot = await wait_snapshot(
            manager, lambda s: state_of("gpus", PluginState.RUNNING)(s) and state_of("fpgas", PluginState.RUNNING)(s)
        )
    assert [p.name for p in snapshot.plugins] == ["fpgas", "gpus"]
    fpga_plugin = snapshot.plugin("fpgas")
    assert fpga_plugin is not None
    assert fpga_plugin.version == "2.0.0"
    assert [g.id for g in fpga_plugin.groups] == ["xil/gpu/fpga"]
    assert sorted(g.id for g in snapshot.groups) == ["acme/gpu/gpu", "xil/gpu/fpga"]


@pytest.mark.anyio
async def test_new_fingerprint_replaces_the_groups() -> None:
    """A later fingerprint message replaces the plugin's groups rather than adding to them."""
    plugin = FakePlugin()
    plugin.push(fingerprint(group("a")))
    async with DeviceManager(stats_interval=None) as manager:
        await manager.add_plugin("fake", plugin)
        await wait_snapshot(manager, lambda s: [g.name for g in s.groups] == ["a"])
        plugin.push(fingerprint(group("b"), group("c")))
        snapshot = await wait_snapshot(manager, lambda s: [g.name for g in s.groups] == ["b", "c"])
    assert snapshot.plugins[0].state is PluginState.RUNNING


# --- restarts ------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_raising_fingerprint_restarts_plugin_with_devices_unhealthy_meanwhile() -> None:
    """A fingerprint stream that raises is restarted; meanwhile its devices are unhealthy, then healthy again."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=True)
    plugin.push(fingerprint(group("gpu", "g1", "g2")))
    async with DeviceManager(stats_interval=None, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        plugin.push(RuntimeError("bus error"))
        snapshot = await wait_snapshot(manager, state_of("fake", PluginState.RESTARTING))
        restarting = snapshot.plugins[0]
        assert restarting.last_error == "fingerprint failed: RuntimeError: bus error"
        assert restarting.retry_delay == 1.0
        devices = restarting.groups[0].devices
        assert [d.id for d in devices] == ["g1", "g2"]
        assert not any(d.healthy for d in devices)
        assert all(
            "'fake' is restarting" in d.health_description and "bus error" in d.health_description for d in devices
        )
        assert plugin.fingerprint_calls == 1

        sleep.release()
        await plugin.changed.wait_until(lambda: plugin.fingerprint_calls == 2)
        plugin.push(fingerprint(group("gpu", "g1", "g3")))
        snapshot = await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
    back = snapshot.plugins[0]
    assert back.restarts == 1
    assert back.retry_delay is None
    assert [(d.id, d.healthy, d.health_description) for d in back.groups[0].devices] == [
        ("g1", True, ""),
        ("g3", True, ""),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (FingerprintResponse(error="device lost"), "fingerprint returned an error: device lost"),
        (END, "fingerprint stream ended"),
        (
            fingerprint(group("gpu", "d1", "d1")),
            "fingerprint returned invalid devices: device group 'acme/gpu/gpu' lists device ids ['d1'] more than once",
        ),
    ],
    ids=["error-response", "stream-end", "duplicate-ids"],
)
async def test_error_response_end_or_invalid_fingerprint_restarts_plugin(
    item: FingerprintResponse | None, reason: str
) -> None:
    """An error message, the end of the stream or an invalid fingerprint all restart the plugin, saying why."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=True)
    plugin.push(fingerprint(group()))
    async with DeviceManager(stats_interval=None, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        plugin.push(item)
        snapshot = await wait_snapshot(manager, state_of("fake", PluginState.RESTARTING))
    assert snapshot.plugins[0].last_error == reason
    assert all(not d.healthy and reason in d.health_description for d in snapshot.plugins[0].groups[0].devices)


@pytest.mark.anyio
async def test_backoff_doubles_up_to_the_maximum() -> None:
    """Consecutive failures wait backoff_initial, doubling each time, capped at backoff_max."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=False)
    for attempt in range(6):
        plugin.push(RuntimeError(f"attempt {attempt}"))
    async with DeviceManager(stats_interval=None, backoff_initial=1.0, backoff_max=8.0, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await sleep.changed.wait_until(lambda: len(sleep.delays) == 6)
        snapshot = await wait_snapshot(manager, lambda s: s.plugins[0].restarts == 6)
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert snapshot.plugins[0].last_error == "fingerprint failed: RuntimeError: attempt 5"


@pytest.mark.anyio
async def test_backoff_resets_after_a_healthy_period() -> None:
    """A plugin that fingerprinted for backoff_reset_after seconds before failing restarts after backoff_initial."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=False)
    now = [0.0]
    async with DeviceManager(
        stats_interval=None, backoff_initial=1.0, backoff_reset_after=60.0, sleep=sleep, clock=lambda: now[0]
    ) as manager:
        await manager.add_plugin("fake", plugin)
        plugin.push(RuntimeError("one"))
        plugin.push(RuntimeError("two"))
        await sleep.changed.wait_until(lambda: len(sleep.delays) == 2)
        plugin.push(fingerprint(group()))
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        now[0] = 59.0  # not yet healthy long enough
        plugin.push(RuntimeError("three"))
        await sleep.changed.wait_until(lambda: len(sleep.delays) == 3)
        plugin.push(fingerprint(group()))
        await wait_snapshot(manager, lambda s: s.plugins[0].state is PluginState.RUNNING and s.plugins[0].restarts == 3)
        now[0] = 59.0 + 60.0
        plugin.push(RuntimeError("four"))
        plugin.push(RuntimeError("five"))
        await sleep.changed.wait_until(lambda: len(sleep.delays) == 5)
    assert sleep.delays == [1.0, 2.0, 4.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backoff_initial": 0}, "backoff_initial must be a positive number of seconds, got 0"),
        ({"backoff_initial": 2.0, "backoff_max": 1.0}, "backoff_max must be at least backoff_initial (2.0 s), got 1.0"),
        ({"stats_interval": -1}, "stats_interval must be a positive number of seconds or None, got -1"),
        ({"backoff_reset_after": 0}, "backoff_reset_after must be a positive number of seconds, got 0"),
        ({"close_timeout": 0}, "close_timeout must be a positive number of seconds, got 0"),
    ],
)
def test_constructor_rejects_bad_timings(kwargs: dict[str, Any], message: str) -> None:
    """Nonsensical intervals and backoffs are a ConfigError naming the setting and the value."""
    with pytest.raises(ConfigError) as info:
        DeviceManager(**kwargs)
    assert str(info.value) == message


# --- stats ---------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_latest_stats_keeps_newest_value_per_device() -> None:
    """Stats start after the first fingerprint; latest_stats holds the newest value of every device."""
    plugin = FakePlugin()
    plugin.push(fingerprint(group("gpu", "d1", "d2")))
    async with DeviceManager(stats_interval=0.5) as manager:
        await manager.add_plugin("fake", plugin)
        await plugin.changed.wait_until(lambda: plugin.open_stats == 1)
        assert plugin.stats_intervals == [0.5]
        first = DeviceGroupStats(vendor="acme", type="gpu", name="gpu", instance_stats={"d1": stat(1), "d2": stat(2)})
        plugin.push_stats(StatsResponse(groups=(first,)))
        plugin.push_stats(
            StatsResponse(
                groups=(DeviceGroupStats(vendor="acme", type="gpu", name="gpu", instance_stats={"d1": stat(3)}),)
            )
        )
        await plugin.changed.wait_until(lambda: plugin.stats_acked == 2)
        latest = manager.latest_stats()
    assert list(latest) == ["acme/gpu/gpu"]
    values = {i: s.summary.int_numerator_val for i, s in latest["acme/gpu/gpu"].instance_stats.items() if s.summary}
    assert values == {"d1": 3, "d2": 2}


@pytest.mark.anyio
async def test_failing_stats_stream_is_retried_without_restarting_the_plugin() -> None:
    """A stats error opens a new stats stream after a backoff; fingerprinting goes on undisturbed."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=False)
    plugin.push(fingerprint(group()))
    async with DeviceManager(stats_interval=1.0, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await plugin.changed.wait_until(lambda: plugin.open_stats == 1)
        plugin.push_stats(StatsResponse(error="sensor offline"))
        await plugin.changed.wait_until(lambda: plugin.stats_calls == 2 and plugin.open_stats == 1)
        snapshot = manager.snapshot()
    assert sleep.delays == [1.0]
    assert snapshot.plugins[0].state is PluginState.RUNNING
    assert snapshot.plugins[0].restarts == 0
    assert plugin.fingerprint_calls == 1


# --- reservations --------------------------------------------------------------------------------------------------


async def _two_plugins(manager: DeviceManager) -> tuple[FakePlugin, FakePlugin]:
    gpus, fpgas = FakePlugin("gpus"), FakePlugin("fpgas")
    gpus.push(fingerprint(group("gpu", "g1", "g2")))
    fpgas.push(fingerprint(group("fpga", "f1", "f2")))
    await manager.add_plugin("gpus", gpus)
    await manager.add_plugin("fpgas", fpgas)
    await wait_snapshot(manager, lambda s: len(s.groups) == 2)
    return gpus, fpgas


@pytest.mark.anyio
async def test_reserve_routes_to_the_plugin_owning_the_group() -> None:
    """reserve() calls the plugin that fingerprinted the group and returns its reservation."""
    async with DeviceManager(stats_interval=None) as manager:
        gpus, fpgas = await _two_plugins(manager)
        reservation = await manager.reserve("acme/gpu/fpga", ["f2"])
    assert reservation.envs == {"PLUGIN": "fpgas", "IDS": "f2"}
    assert fpgas.reserved == [["f2"]]
    assert gpus.reserved == []


@pytest.mark.anyio
async def test_reserve_unknown_group_is_plugin_not_found_listing_known_groups() -> None:
    """A group no plugin provides raises PluginNotFoundError naming it and listing the known groups."""
    async with DeviceManager(stats_interval=None) as manager:
        await _two_plugins(manager)
        with pytest.raises(PluginNotFoundError) as info:
            await manager.reserve("acme/gpu/tpu", ["t1"])
    assert str(info.value) == (
        "no device plugin provides device group 'acme/gpu/tpu'; known groups: ['acme/gpu/fpga', 'acme/gpu/gpu']"
    )


@pytest.mark.anyio
async def test_reserve_unknown_device_id_is_device_error_naming_it() -> None:
    """Ids that are not in the group raise DeviceError naming them and the group's devices; nothing is reserved."""
    async with DeviceManager(stats_interval=None) as manager:
        gpus, _ = await _two_plugins(manager)
        with pytest.raises(DeviceError) as info:
            await manager.reserve("acme/gpu/gpu", ["g1", "g9"])
    assert str(info.value) == "device group 'acme/gpu/gpu' has no device ['g9']; its devices are ['g1', 'g2']"
    assert gpus.reserved == []


@pytest.mark.anyio
async def test_reserve_failure_of_the_plugin_is_device_error() -> None:
    """An exception from the plugin's reserve() comes back as DeviceError naming the plugin, with the cause."""
    async with DeviceManager(stats_interval=None) as manager:
        gpus, _ = await _two_plugins(manager)
        gpus.reserve_error = OSError("permission denied")
        with pytest.raises(DeviceError) as info:
            await manager.reserve("acme/gpu/gpu", ["g1"])
    assert str(info.value) == "device plugin 'gpus' could not reserve ['g1'] of group 'acme/gpu/gpu': permission denied"
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.anyio
async def test_reserve_on_a_restarting_plugin_is_device_error() -> None:
    """While its plugin restarts, a group's devices cannot be reserved; the error says why."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=True)
    plugin.push(fingerprint(group("gpu", "g1")))
    async with DeviceManager(stats_interval=None, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        plugin.push(RuntimeError("gone"))
        await wait_snapshot(manager, state_of("fake", PluginState.RESTARTING))
        with pytest.raises(DeviceError) as info:
            await manager.reserve("acme/gpu/gpu", ["g1"])
    assert str(info.value) == (
        "device plugin 'fake' providing group 'acme/gpu/gpu' is restarting: fingerprint failed: RuntimeError: gone"
    )


# --- adding and removing -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_add_plugin_rejects_bad_names_and_objects() -> None:
    """Empty or taken names, non-plugins and non-device plugins raise InvalidPluginError naming the problem."""
    async with DeviceManager(stats_interval=None) as manager:
        await manager.add_plugin("fake", FakePlugin())
        with pytest.raises(InvalidPluginError, match=r"^device plugin name must be a non-empty string, got ''$"):
            await manager.add_plugin("", FakePlugin())
        with pytest.raises(
            InvalidPluginError, match=r"^a device plugin named 'fake' is already managed; remove it first$"
        ):
            await manager.add_plugin("fake", FakePlugin())
        with pytest.raises(
            InvalidPluginError, match=r"^device plugin 'x' must implement the DevicePlugin protocol, got int$"
        ):
            await manager.add_plugin("x", 42)  # type: ignore[arg-type]
        with pytest.raises(InvalidPluginError, match=r"^plugin 'drv' reports type 'driver'; expected 'device'$"):
            await manager.add_plugin("drv", FakePlugin(plugin_type="driver"))
        assert [p.name for p in manager.snapshot().plugins] == ["fake"]


@pytest.mark.anyio
async def test_add_plugin_outside_the_manager_block_is_device_error() -> None:
    """Plugins can be added only while the manager is entered."""
    manager = DeviceManager()
    with pytest.raises(DeviceError, match="not started"):
        await manager.add_plugin("fake", FakePlugin())
    async with manager:
        pass
    with pytest.raises(DeviceError, match="shut down"):
        await manager.add_plugin("fake", FakePlugin())


@pytest.mark.anyio
async def test_remove_plugin_stops_its_streams_and_forgets_it() -> None:
    """remove_plugin closes the plugin's fingerprint and stats streams and drops it; others keep running."""
    async with DeviceManager(stats_interval=1.0) as manager:
        gpus, fpgas = await _two_plugins(manager)
        await gpus.changed.wait_until(lambda: gpus.open_stats == 1)
        await manager.remove_plugin("gpus")
        assert (gpus.open_fingerprints, gpus.open_stats) == (0, 0)
        assert [p.name for p in manager.snapshot().plugins] == ["fpgas"]
        assert fpgas.open_fingerprints == 1
        with pytest.raises(PluginNotFoundError) as info:
            await manager.remove_plugin("gpus")
        assert str(info.value) == "no device plugin named 'gpus' is managed; known plugins: ['fpgas']"
        with pytest.raises(PluginNotFoundError):
            await manager.reserve("acme/gpu/gpu", ["g1"])
        await manager.add_plugin("gpus", FakePlugin("gpus"))  # the name is free again


@pytest.mark.anyio
async def test_leaving_the_manager_closes_every_stream() -> None:
    """Leaving the async with block closes the fingerprint and stats streams of every plugin."""
    plugins = [FakePlugin("a"), FakePlugin("b")]
    async with DeviceManager(stats_interval=1.0) as manager:
        for plugin in plugins:
            plugin.push(fingerprint(group(plugin.name)))
            await manager.add_plugin(plugin.name, plugin)
        for plugin in plugins:
            await plugin.changed.wait_until(plugin.all_streams_open)
    assert [(p.open_fingerprints, p.open_stats) for p in plugins] == [(0, 0), (0, 0)]
    assert manager.snapshot().plugins == ()


# --- subscriptions -------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_subscription_sees_every_change_in_order() -> None:
    """A subscriber reads a snapshot first, then each plugin change with seq growing by one, then the end."""
    plugin = FakePlugin()
    async with DeviceManager(stats_interval=None) as manager, manager.subscribe() as changes:
        first = await next_change(changes)
        assert isinstance(first, SnapshotChange)
        assert (first.seq, first.snapshot.plugins, first.lagged) == (0, (), False)
        await manager.add_plugin("fake", plugin)
        plugin.push(fingerprint(group()))
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        await manager.remove_plugin("fake")
        seen = [await next_change(changes) for _ in range(3)]
    assert all(isinstance(c, PluginChange) and c.name == "fake" for c in seen)
    plugin_changes = [c for c in seen if isinstance(c, PluginChange)]
    assert [c.seq for c in plugin_changes] == [1, 2, 3]
    assert [c.plugin.state if c.plugin else None for c in plugin_changes] == [
        PluginState.STARTING,
        PluginState.RUNNING,
        None,
    ]
    with anyio.fail_after(5):
        assert [c async for c in changes] == []


@pytest.mark.anyio
async def test_slow_subscriber_gets_a_lagged_snapshot_instead_of_blocking() -> None:
    """A subscriber past its buffer never blocks the manager: its backlog becomes one current snapshot."""
    plugin = FakePlugin()
    async with DeviceManager(stats_interval=None) as manager, manager.subscribe(buffer=2) as changes:
        assert isinstance(await next_change(changes), SnapshotChange)
        await manager.add_plugin("fake", plugin)
        for name in ("a", "b", "c", "d"):
            plugin.push(fingerprint(group(name)))
        await wait_snapshot(manager, lambda s: [g.name for g in s.groups] == ["d"])
        caught_up = await next_change(changes)
        assert isinstance(caught_up, SnapshotChange)
        assert caught_up.lagged
        assert caught_up.snapshot == manager.snapshot()
        plugin.push(fingerprint(group("e")))
        after = await next_change(changes)
    assert isinstance(after, PluginChange)
    assert after.seq == caught_up.seq + 1
    assert after.plugin is not None
    assert [g.name for g in after.plugin.groups] == ["e"]


@pytest.mark.anyio
async def test_subscribe_rejects_a_buffer_below_one() -> None:
    """A subscription buffer must hold at least one change."""
    manager = DeviceManager()
    with pytest.raises(InvalidPluginError, match=r"^subscribe buffer must be a positive number of changes, got 0$"):
        async with manager.subscribe(buffer=0):
            pass


# --- registry --------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_plugin_with_socket_is_registered_as_device_until_removed() -> None:
    """A plugin added with a socket is registered as type device while managed and deregistered on removal."""
    async with Registry() as registry, DeviceManager(registry=registry, stats_interval=None) as manager:
        await manager.add_plugin("fs", FakePlugin(version="0.4.0"), socket_path="/run/ph/fs.sock")
        assert await registry.list_plugins("device") == [
            PluginInfo(
                name="fs",
                type="device",
                version="0.4.0",
                connection_info=PluginConnectionInfo(socket_path="/run/ph/fs.sock"),
                alloc_id="host",
            )
        ]
        await manager.remove_plugin("fs")
        assert await registry.list_plugins("device") == []


@pytest.mark.anyio
async def test_registered_plugins_are_deregistered_when_the_manager_stops() -> None:
    """Leaving the manager deregisters its plugins; one without a socket is never registered."""
    async with Registry() as registry:
        async with DeviceManager(registry=registry, stats_interval=None) as manager:
            await manager.add_plugin("remote", FakePlugin(), socket_path="/run/ph/remote.sock")
            await manager.add_plugin("local", FakePlugin())
            assert [p.name for p in await registry.list_plugins("device")] == ["remote"]
        assert await registry.list_plugins("device") == []


@pytest.mark.anyio
async def test_registry_refusal_leaves_no_plugin_behind() -> None:
    """When the registry refuses the registration, add_plugin raises and the plugin is stopped and forgotten."""
    plugin = FakePlugin()
    async with Registry() as registry, DeviceManager(registry=registry, stats_interval=None) as manager:
        with pytest.raises(InvalidPluginError, match="is relative; expected an absolute path"):
            await manager.add_plugin("fake", plugin, socket_path="relative.sock")
        assert manager.snapshot().plugins == ()
    assert plugin.open_fingerprints == 0


# --- over gRPC -------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_plugin_served_over_grpc_is_managed_through_its_client(short_tmp: Path) -> None:
    """A DevicePluginClient is managed like an in-process plugin: fingerprint, restart, reserve and registration."""
    plugin, sleep = FakePlugin("remote"), ManualSleep(gated=False)
    plugin.push(fingerprint(group("gpu", "g1")))
    socket_path = str(short_tmp / "dev.sock")
    async with (
        DevicePluginServer(plugin, socket_path),
        DevicePluginClient(socket_path) as client,
        Registry() as registry,
        DeviceManager(registry=registry, stats_interval=None, sleep=sleep) as manager,
    ):
        await manager.add_plugin("remote", client, socket_path=socket_path)
        await wait_snapshot(manager, state_of("remote", PluginState.RUNNING))
        reservation = await manager.reserve("acme/gpu/gpu", ["g1"])
        assert reservation.envs == {"PLUGIN": "remote", "IDS": "g1"}
        registered = await registry.list_plugins("device")
        assert [(p.name, p.version, p.connection_info) for p in registered] == [
            ("remote", "1.2.3", PluginConnectionInfo(socket_path=socket_path))
        ]
        plugin.push(RuntimeError("driver crashed"))
        await sleep.changed.wait_until(lambda: sleep.delays == [1.0])
        plugin.push(fingerprint(group("gpu", "g1", "g2")))
        snapshot = await wait_snapshot(manager, lambda s: len(s.groups) == 1 and len(s.groups[0].devices) == 2)
    remote = snapshot.plugins[0]
    assert (remote.state, remote.restarts) == (PluginState.RUNNING, 1)
    assert remote.last_error is not None
    assert "driver crashed" in remote.last_error
    assert plugin.open_fingerprints == 0


@pytest.mark.anyio
async def test_removing_a_plugin_during_its_restart_backoff_leaves_the_manager_working() -> None:
    """remove_plugin while the plugin waits out its backoff stops it and nothing else: the caller and the
    manager carry on, and another plugin can still be added."""
    plugin, sleep = FakePlugin(), ManualSleep(gated=True)
    plugin.push(fingerprint(group("gpu", "g1")))
    other = FakePlugin("other")
    other.push(fingerprint(group("npu", "n1")))
    async with DeviceManager(stats_interval=None, sleep=sleep) as manager:
        await manager.add_plugin("fake", plugin)
        await wait_snapshot(manager, state_of("fake", PluginState.RUNNING))
        plugin.push(RuntimeError("bus error"))
        await wait_snapshot(manager, state_of("fake", PluginState.RESTARTING))
        await manager.remove_plugin("fake")
        assert manager.snapshot().plugins == ()
        await manager.add_plugin("other", other)
        snapshot = await wait_snapshot(manager, state_of("other", PluginState.RUNNING))
        assert [p.name for p in snapshot.plugins] == ["other"]
    reached_the_end = True
    assert reached_the_end
