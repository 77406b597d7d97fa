"""Registry events: ordering under concurrency, per-subscriber buffers, lag, replay with `since`, expiry."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest
from helpers.registry import make_info

from plugin_host import EventType, PluginUpdateEvent, Registry, SqliteStateStore
from plugin_host.errors import EventsExpiredError, InvalidPluginError, SubscriberLaggedError
from plugin_host.registry.registry import Dispenser

pytestmark = pytest.mark.anyio

_NONE: dict[str, Dispenser] = {}


async def test_concurrent_mutations_reach_every_subscriber_in_the_same_order(tmp_path: Path) -> None:
    """1,000 register/deregister calls from 50 tasks: 3 subscribers see one gapless sequence matching the state."""
    received: list[list[PluginUpdateEvent]] = [[], [], []]
    async with SqliteStateStore(tmp_path / "s.db", synchronous="normal") as store, Registry(state=store) as registry:
        subscriptions = [registry.subscribe("csi-node", buffer=2_000) for _ in received]
        streams = [await s.__aenter__() for s in subscriptions]

        async def worker(worker_id: int) -> None:
            rng = random.Random(worker_id)
            for _ in range(20):
                name = f"p{rng.randrange(5)}"
                alloc = f"a{rng.randrange(4)}"
                if rng.random() < 0.6:
                    await registry.register_plugin(make_info(name=name, alloc_id=alloc, version=str(rng.randrange(3))))
                else:
                    await registry.deregister_plugin("csi-node", name, alloc)

        async with anyio.create_task_group() as tg:
            for worker_id in range(50):
                tg.start_soon(worker, worker_id)
        total = registry.last_seq
        assert total > 0
        for subscription in subscriptions:
            await subscription.__aexit__(None, None, None)
        for stream, out in zip(streams, received, strict=True):
            with anyio.fail_after(5):
                out.extend([event async for event in stream])
        final = {p.name: p for p in await registry.list_plugins("csi-node")}

    assert received[0] == received[1] == received[2]
    assert [e.seq for e in received[0]] == list(range(1, total + 1))
    # Replaying the events reproduces the registry's final state.
    model: dict[tuple[str, str], tuple[int, object]] = {}
    for event in received[0]:
        key = (event.info.name, event.info.alloc_id)
        if event.event_type is EventType.DEREGISTERED:
            del model[key]
        elif event.event_type is EventType.REGISTERED:
            model[key] = (event.seq, event.info)
        else:
            model[key] = (model[key][0], event.info)
    newest: dict[str, tuple[int, object]] = {}
    for (name, _alloc), (position, info) in model.items():
        if name not in newest or position > newest[name][0]:
            newest[name] = (position, info)
    assert {name: info for name, (_, info) in newest.items()} == final


async def test_a_stalled_subscriber_lags_without_slowing_the_others() -> None:
    """A subscriber that never reads overflows its own buffer and gets SubscriberLaggedError; others get all."""
    async with (
        Registry() as registry,
        registry.subscribe("csi-node", buffer=4) as stalled,
        registry.subscribe("csi-node", buffer=100) as healthy,
    ):
        for i in range(10):
            await registry.register_plugin(make_info(alloc_id=f"a{i}"))
        with anyio.fail_after(5):
            got = [await healthy.__anext__() for _ in range(10)]
        assert [e.seq for e in got] == list(range(1, 11))
        delivered = [await stalled.__anext__() for _ in range(4)]
        assert [e.seq for e in delivered] == [1, 2, 3, 4]
        with pytest.raises(SubscriberLaggedError, match="resubscribe with since=4") as caught:
            await stalled.__anext__()
        assert caught.value.last_seq == 4
        # The lagged reader resumes exactly where it stopped.
        async with registry.subscribe("csi-node", since=caught.value.last_seq) as resumed:
            with anyio.fail_after(5):
                rest = [await resumed.__anext__() for _ in range(6)]
        assert [e.seq for e in rest] == list(range(5, 11))


async def test_subscribers_see_only_their_type() -> None:
    """Events are per plugin type, while seq is shared across the registry."""
    async with Registry() as registry, registry.subscribe("csi-controller") as controller_events:
        await registry.register_plugin(make_info(ptype="csi-node"))
        await registry.register_plugin(make_info(ptype="csi-controller"))
        with anyio.fail_after(5):
            event = await controller_events.__anext__()
        assert (event.seq, event.info.type) == (2, "csi-controller")


async def test_leaving_the_subscribe_block_ends_iteration() -> None:
    """After the block exits, iteration ends and later events are not queued."""
    async with Registry() as registry:
        async with registry.subscribe("csi-node") as events:
            await registry.register_plugin(make_info(alloc_id="a1"))
        await registry.register_plugin(make_info(alloc_id="a2"))
        with anyio.fail_after(5):
            assert [e.seq async for e in events] == [1]


async def test_shutdown_ends_every_iterator() -> None:
    """shutdown() ends the iteration of every live subscriber."""
    ended: list[bool] = []
    async with Registry() as registry:

        async def consume() -> None:
            async with registry.subscribe("csi-node") as events:
                ready.set()
                async for _ in events:
                    pass
            ended.append(True)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    ready = anyio.Event()
                    tg.start_soon(consume)
                    await ready.wait()
                await registry.shutdown()
    assert ended == [True, True, True]


async def test_since_replays_missed_events_after_a_restart(tmp_path: Path) -> None:
    """A subscriber that reconnects after a restart with since=<last seen> gets exactly the events it missed."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        async with registry.subscribe("csi-node") as events:
            await registry.register_plugin(make_info(alloc_id="a1"))
            with anyio.fail_after(5):
                last_seen = (await events.__anext__()).seq
        await registry.register_plugin(make_info(alloc_id="a2"))
        await registry.register_plugin(make_info(alloc_id="a2", version="9"))
        await registry.register_plugin(make_info(ptype="device"))
        await registry.deregister_plugin("csi-node", "hostpath", "a1")
    async with (
        SqliteStateStore(path) as store,
        Registry(state=store) as registry,
        registry.subscribe("csi-node", since=last_seen) as events,
    ):
        await registry.register_plugin(make_info(alloc_id="a3"))
        with anyio.fail_after(5):
            missed = [await events.__anext__() for _ in range(4)]
    assert [(e.seq, e.event_type.value, e.info.alloc_id) for e in missed] == [
        (2, "registered", "a2"),
        (3, "updated", "a2"),
        (5, "deregistered", "a1"),
        (6, "registered", "a3"),
    ]


async def test_since_older_than_retention_raises_events_expired(tmp_path: Path) -> None:
    """With retention 5, since=2 after 10 events raises EventsExpiredError naming the oldest retained seq 6."""
    async with (
        SqliteStateStore(tmp_path / "s.db", event_retention=5) as store,
        Registry(state=store) as registry,
    ):
        for i in range(10):
            await registry.register_plugin(make_info(alloc_id=f"a{i}"))
        with pytest.raises(EventsExpiredError, match="oldest retained seq is 6") as caught:
            async with registry.subscribe("csi-node", since=2):
                pass
        assert caught.value.oldest_seq == 6
        async with registry.subscribe("csi-node", since=5) as events:
            with anyio.fail_after(5):
                assert (await events.__anext__()).seq == 6


async def test_since_ahead_of_the_registry_is_rejected() -> None:
    """since beyond the newest seq (another state file?) is an InvalidPluginError naming both numbers."""
    async with Registry() as registry:
        await registry.register_plugin(make_info())
        with pytest.raises(InvalidPluginError, match="since=7 is ahead of the registry's newest event seq 1"):
            async with registry.subscribe("csi-node", since=7):
                pass


async def test_since_equal_to_the_newest_seq_continues_live() -> None:
    """since=last_seq replays nothing and continues with live events."""
    async with Registry(dispensers=_NONE) as registry:
        await registry.register_plugin(make_info(alloc_id="a1"))
        async with registry.subscribe("csi-node", since=registry.last_seq) as events:
            await registry.register_plugin(make_info(alloc_id="a2"))
            with anyio.fail_after(5):
                assert (await events.__anext__()).seq == 2
