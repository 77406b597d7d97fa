"""Group commit: mutations queued while a commit is in flight share the next transaction, and nothing else changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from helpers.registry import make_info

from plugin_host import PluginUpdateEvent, Registry, SqliteStateStore
from plugin_host._metrics import CommittedEvent, Metrics
from plugin_host.errors import InvalidPluginError, StateError
from plugin_host.registry.store import Change, EventHistory, RegistrySnapshot

pytestmark = pytest.mark.anyio


class RecordingStore:
    """A real SqliteStateStore that records each batch, can hold one batch at a gate, and fails poisoned batches."""

    def __init__(self, inner: SqliteStateStore) -> None:
        self.inner = inner
        self.batches: list[list[int]] = []
        self.hold_next = False
        self.held = anyio.Event()
        self.release = anyio.Event()
        self.poison = "poison"

    async def load_registry(self) -> RegistrySnapshot:
        return await self.inner.load_registry()

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        return await self.inner.events_since(ptype, since)

    async def commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        self.batches.append([event.seq for _, event in commits])
        if self.hold_next:
            self.hold_next = False
            self.held.set()
            await self.release.wait()
        if any(event.info.name == self.poison for _, event in commits):
            raise StateError("cannot write to the state file: disk I/O error (injected)")
        await self.inner.commit(commits)


async def test_concurrent_mutations_are_committed_together_durably_and_in_order(tmp_path: Path) -> None:
    """50 concurrent registrations take fewer transactions than callers; all are durable, seqs gapless, in order."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as inner:
        store = RecordingStore(inner)
        async with Registry(state=store) as registry, registry.subscribe("csi-node") as events:
            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(registry.register_plugin, make_info(name=f"p{i:02d}"))
            received = []
            with anyio.fail_after(5):
                async for event in events:
                    received.append(event.seq)
                    if len(received) == 50:
                        break
    assert received == list(range(1, 51))
    assert [seq for batch in store.batches for seq in batch] == list(range(1, 51))
    assert len(store.batches) < 50, f"no batching: {len(store.batches)} transactions for 50 callers"
    assert max(len(batch) for batch in store.batches) > 1
    async with SqliteStateStore(path) as reopened, Registry(state=reopened) as registry:
        assert [info.name for info in await registry.list_plugins("csi-node")] == [f"p{i:02d}" for i in range(50)]
        assert registry.last_seq == 50


async def test_a_failed_batch_fails_exactly_its_callers_and_seq_stays_gapless(tmp_path: Path) -> None:
    """The batch queued behind a held commit fails as one; the batch before and the calls after succeed."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        store.hold_next = True
        outcomes: dict[str, str] = {}

        async def register(name: str) -> None:
            try:
                await registry.register_plugin(make_info(name=name))
            except StateError as exc:
                outcomes[name] = f"failed: {exc}"
            else:
                outcomes[name] = "ok"

        async with Registry(state=store) as registry:
            async with anyio.create_task_group() as tg:
                tg.start_soon(register, "first")
                await store.held.wait()  # "first" is being committed; the next two queue behind it
                tg.start_soon(register, "poison")
                tg.start_soon(register, "bystander")
                await anyio.wait_all_tasks_blocked()
                store.release.set()
            await register("after")
            listed = [info.name for info in await registry.list_plugins("csi-node")]
            last_seq = registry.last_seq
    assert outcomes["first"] == "ok"
    assert outcomes["after"] == "ok"
    assert outcomes["poison"].startswith("failed: cannot write to the state file")
    assert outcomes["bystander"] == outcomes["poison"]
    assert store.batches == [[1], [2, 3], [2]]
    assert listed == ["after", "first"]
    assert last_seq == 2


async def test_a_caller_cancelled_while_its_batch_commits_still_gets_its_change(tmp_path: Path) -> None:
    """Once its batch is being committed, a cancelled caller stops waiting but the change lands; nothing is stuck."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        store.hold_next = True
        async with Registry(state=store) as registry:
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()

                async def in_flight() -> None:
                    with scope:
                        await registry.register_plugin(make_info(name="in-flight"))

                tg.start_soon(in_flight)
                await store.held.wait()  # its own batch is at the store now
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                store.release.set()
            await registry.register_plugin(make_info(name="later"))
            assert [info.name for info in await registry.list_plugins("csi-node")] == ["in-flight", "later"]
            assert registry.last_seq == 2


async def test_mutations_of_one_batch_see_each_other(tmp_path: Path) -> None:
    """Register, update and deregister of one alloc in one batch are planned like sequential calls."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        store.hold_next = True
        async with Registry(state=store) as registry, registry.subscribe("csi-node") as events:
            async with anyio.create_task_group() as tg:
                tg.start_soon(registry.register_plugin, make_info(name="other"))
                await store.held.wait()
                tg.start_soon(registry.register_plugin, make_info(name="p", version="1"))
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(registry.register_plugin, make_info(name="p", version="1"))  # identical: no event
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(registry.register_plugin, make_info(name="p", version="2"))  # updated in place
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(registry.deregister_plugin, "csi-node", "p", "alloc-1")
                await anyio.wait_all_tasks_blocked()
                store.release.set()
            kinds = []
            with anyio.fail_after(5):
                async for event in events:
                    kinds.append((event.seq, event.event_type.value, event.info.name, event.info.version))
                    if event.seq == 4:
                        break
    assert store.batches == [[1], [2, 3, 4]]
    assert kinds == [
        (1, "registered", "other", "1.0.0"),
        (2, "registered", "p", "1"),
        (3, "updated", "p", "2"),
        (4, "deregistered", "p", "2"),
    ]


class FailingMetrics(Metrics):
    """A metrics sink that fails on every committed batch (an observer's bug must not hurt the registry)."""

    def registry_commit(self, events: Sequence[CommittedEvent], *, seconds: float, batch: int) -> None:
        raise RuntimeError("metrics sink broke")


async def test_a_failing_metrics_sink_after_a_commit_strands_no_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every caller of a committed batch returns and every event is published even when the metrics sink raises."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        store.hold_next = True
        registry = Registry(state=store, metrics=FailingMetrics())
        async with registry, registry.subscribe("csi-node") as events:
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(registry.register_plugin, make_info(name="p0"))
                    await store.held.wait()
                    for i in range(1, 4):
                        tg.start_soon(registry.register_plugin, make_info(name=f"p{i}"))
                    await anyio.wait_all_tasks_blocked()
                    store.release.set()
                seqs = []
                async for event in events:
                    seqs.append(event.seq)
                    if len(seqs) == 4:
                        break
            assert seqs == [1, 2, 3, 4]
            assert registry.last_seq == 4
    assert store.batches == [[1], [2, 3, 4]]
    assert "the metrics sink failed" in caplog.text


async def test_text_the_state_file_cannot_store_is_refused_before_it_is_queued(tmp_path: Path) -> None:
    """A lone surrogate (as os.fsdecode makes of non-UTF-8 bytes) is an InvalidPluginError naming the field."""
    async with SqliteStateStore(tmp_path / "state.db") as store, Registry(state=store) as registry:
        with pytest.raises(InvalidPluginError, match=r"^alloc_id 'a\\udcff' is not valid UTF-8 text"):
            await registry.register_plugin(make_info(alloc_id="a\udcff"))
        with pytest.raises(InvalidPluginError, match=r"^options\['k'\] 'v\\udcff' is not valid UTF-8"):
            await registry.register_plugin(make_info(k="v\udcff"))
        await registry.register_plugin(make_info(name="fine"))
        assert registry.last_seq == 1


async def test_a_reader_that_keeps_up_is_never_overrun_by_one_batch(tmp_path: Path) -> None:
    """20 concurrent registrations against a subscriber with an 8-event buffer: batches fit it, nothing lags."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        async with Registry(state=store) as registry, registry.subscribe("csi-node", buffer=8) as events:
            received: list[int] = []

            async def read() -> None:
                async for event in events:
                    received.append(event.seq)
                    if event.seq == 20:
                        return

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    for i in range(20):
                        tg.start_soon(registry.register_plugin, make_info(name=f"p{i:02d}"))
    assert received == list(range(1, 21))
    assert max(len(batch) for batch in store.batches) <= 4


async def test_a_queued_caller_can_give_up_and_its_change_is_withdrawn(tmp_path: Path) -> None:
    """fail_after around a mutation queued behind a hung commit fires on time; the withdrawn change never lands."""
    async with SqliteStateStore(tmp_path / "state.db") as inner:
        store = RecordingStore(inner)
        store.hold_next = True
        async with Registry(state=store) as registry:
            async with anyio.create_task_group() as tg:
                tg.start_soon(registry.register_plugin, make_info(name="held"))
                await store.held.wait()
                with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                    await registry.register_plugin(make_info(name="impatient"))
                store.release.set()
            await registry.register_plugin(make_info(name="later"))
            assert [info.name for info in await registry.list_plugins("csi-node")] == ["held", "later"]
            assert registry.last_seq == 2
    assert store.batches == [[1], [2]]
