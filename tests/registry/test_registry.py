"""Registry semantics: Nomad's dynamicplugins behaviour, and the places where we deliberately differ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from helpers.registry import make_info

from plugin_host import EventType, PluginConnectionInfo, PluginInfo, PluginUpdateEvent, Registry
from plugin_host.errors import (
    DispenseError,
    InvalidPluginError,
    NoDispenserError,
    PluginNotFoundError,
    RegistryClosedError,
)

pytestmark = pytest.mark.anyio


async def _drain(events: Any, count: int) -> list[PluginUpdateEvent]:
    out: list[PluginUpdateEvent] = []
    with anyio.fail_after(5):
        async for event in events:
            out.append(event)
            if len(out) == count:
                break
    return out


async def test_newest_registration_is_listed_and_dispensed() -> None:
    """A second alloc of the same plugin goes first: list and dispense use it."""
    async with Registry(dispensers={"csi-node": lambda info: info.alloc_id}) as registry:
        await registry.register_plugin(make_info(alloc_id="a1"))
        await registry.register_plugin(make_info(alloc_id="a2"))
        assert [p.alloc_id for p in await registry.list_plugins("csi-node")] == ["a2"]
        assert await registry.dispense_plugin("csi-node", "hostpath") == "a2"


async def test_list_returns_newest_per_name_sorted_by_name() -> None:
    """list_plugins gives one entry per name, the newest, sorted by name; other types are separate."""
    async with Registry() as registry:
        await registry.register_plugin(make_info(name="zeta"))
        await registry.register_plugin(make_info(name="alpha", alloc_id="x"))
        await registry.register_plugin(make_info(name="alpha", alloc_id="y"))
        await registry.register_plugin(make_info(name="ctrl", ptype="csi-controller"))
        listed = await registry.list_plugins("csi-node")
        assert [(p.name, p.alloc_id) for p in listed] == [("alpha", "y"), ("zeta", "alloc-1")]
        assert [p.name for p in await registry.list_plugins("csi-controller")] == ["ctrl"]
        assert await registry.list_plugins("device") == []
        assert registry.plugin_types() == ["csi-controller", "csi-node"]


async def test_deregistering_one_alloc_makes_the_next_newest_current() -> None:
    """Removing the newest alloc leaves the others, and the next-newest becomes current."""
    async with Registry(dispensers={"csi-node": lambda info: info.alloc_id}) as registry:
        for alloc in ("a1", "a2", "a3"):
            await registry.register_plugin(make_info(alloc_id=alloc))
        await registry.deregister_plugin("csi-node", "hostpath", "a3")
        assert await registry.dispense_plugin("csi-node", "hostpath") == "a2"
        assert (await registry.plugin_for_alloc("csi-node", "hostpath", "a1")).alloc_id == "a1"
        await registry.deregister_plugin("csi-node", "hostpath", "a2")
        await registry.deregister_plugin("csi-node", "hostpath", "a1")
        assert await registry.list_plugins("csi-node") == []


async def test_plugin_for_alloc_finds_an_older_registration() -> None:
    """plugin_for_alloc returns the registration of that alloc even when a newer one exists."""
    async with Registry() as registry:
        old = make_info(alloc_id="old", socket_path="/run/old.sock")
        await registry.register_plugin(old)
        await registry.register_plugin(make_info(alloc_id="new"))
        assert await registry.plugin_for_alloc("csi-node", "hostpath", "old") == old
        with pytest.raises(PluginNotFoundError, match=r"'hostpath'.*alloc 'missing'"):
            await registry.plugin_for_alloc("csi-node", "hostpath", "missing")


async def test_stub_dispenser_overrides_and_can_be_removed() -> None:
    """A stub replaces the type's dispenser until it is removed with None."""
    async with Registry(dispensers={"csi-node": lambda info: "real"}) as registry:
        await registry.register_plugin(make_info())
        registry.stub_dispenser_for_type("csi-node", lambda info: "stub")
        assert await registry.dispense_plugin("csi-node", "hostpath") == "stub"
        registry.stub_dispenser_for_type("csi-node", None)
        assert await registry.dispense_plugin("csi-node", "hostpath") == "real"


async def test_async_dispenser_is_awaited() -> None:
    """A coroutine-function dispenser is awaited and its result returned."""

    async def dispense(info: PluginInfo) -> str:
        await anyio.lowlevel.checkpoint()
        return f"client:{info.connection_info.socket_path if info.connection_info else ''}"

    async with Registry(dispensers={"csi-node": dispense}) as registry:
        await registry.register_plugin(make_info(socket_path="/run/a.sock"))
        assert await registry.dispense_plugin("csi-node", "hostpath") == "client:/run/a.sock"


async def test_identical_reregistration_is_a_noop_without_event() -> None:
    """Registering the same alloc with identical info changes nothing and emits nothing (Nomad re-syncs state)."""
    async with Registry() as registry, registry.subscribe("csi-node") as events:
        await registry.register_plugin(make_info())
        await registry.register_plugin(make_info())
        await registry.register_plugin(make_info(name="other"))
        got = await _drain(events, 2)
        assert [(e.seq, e.event_type, e.info.name) for e in got] == [
            (1, EventType.REGISTERED, "hostpath"),
            (2, EventType.REGISTERED, "other"),
        ]
        assert registry.last_seq == 2


async def test_changed_reregistration_replaces_in_place_and_emits_updated() -> None:
    """The same alloc with changed info keeps its place in the order and emits `updated`."""
    async with Registry() as registry, registry.subscribe("csi-node") as events:
        await registry.register_plugin(make_info(alloc_id="a1"))
        await registry.register_plugin(make_info(alloc_id="a2"))
        changed = make_info(alloc_id="a1", version="2.0.0")
        await registry.register_plugin(changed)
        got = await _drain(events, 3)
        assert got[2] == PluginUpdateEvent(seq=3, event_type=EventType.UPDATED, info=changed)
        # a2 is still the newest registration; a1 was updated where it stood
        assert (await registry.list_plugins("csi-node"))[0].alloc_id == "a2"
        assert await registry.plugin_for_alloc("csi-node", "hostpath", "a1") == changed


async def test_deregistering_unknown_alloc_or_name_emits_nothing() -> None:
    """Unknown names and allocs are a no-op (Nomad emits a deregistration of the wrong plugin here)."""
    async with Registry() as registry, registry.subscribe("csi-node") as events:
        await registry.register_plugin(make_info(alloc_id="a1"))
        await registry.deregister_plugin("csi-node", "hostpath", "nope")
        await registry.deregister_plugin("csi-node", "nope", "a1")
        await registry.deregister_plugin("device", "hostpath", "a1")
        await registry.deregister_plugin("csi-node", "hostpath", "a1")
        got = await _drain(events, 2)
        assert [(e.seq, e.event_type, e.info.alloc_id) for e in got] == [
            (1, EventType.REGISTERED, "a1"),
            (2, EventType.DEREGISTERED, "a1"),
        ]


async def test_wait_for_plugin_returns_at_once_when_present() -> None:
    """wait_for_plugin does not wait for a plugin that is already registered."""
    async with Registry() as registry:
        info = make_info()
        await registry.register_plugin(info)
        with anyio.fail_after(1):
            assert await registry.wait_for_plugin("csi-node", "hostpath") == info


async def test_wait_for_plugin_wakes_on_the_registration() -> None:
    """A waiter is woken by the registration itself, with no polling delay, and other names don't wake it."""
    async with Registry() as registry:
        result: list[PluginInfo] = []
        waiting = anyio.Event()

        async def waiter() -> None:
            waiting.set()
            result.append(await registry.wait_for_plugin("csi-node", "hostpath"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await waiting.wait()
            await registry.register_plugin(make_info(name="other"))
            assert result == []
            info = make_info()
            with anyio.fail_after(1):
                await registry.register_plugin(info)
        assert result == [info]


async def test_wait_for_plugin_fails_when_the_registry_shuts_down() -> None:
    """Shutting down wakes waiters with RegistryClosedError instead of leaving them hanging."""
    async with Registry() as registry:
        errors: list[BaseException] = []
        waiting = anyio.Event()

        async def waiter() -> None:
            waiting.set()
            try:
                await registry.wait_for_plugin("csi-node", "hostpath")
            except RegistryClosedError as exc:
                errors.append(exc)

        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await waiting.wait()
                await registry.shutdown()
        assert len(errors) == 1


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "pattern"),
    [
        (PluginInfo(name="", type="csi-node", connection_info=PluginConnectionInfo(socket_path="/a.sock")), "name"),
        (PluginInfo(name="p", type="", connection_info=PluginConnectionInfo(socket_path="/a.sock")), "type"),
        (PluginInfo(name="p", type="csi-node"), "connection_info of plugin 'p'.*missing"),
    ],
)
async def test_register_rejects_missing_fields(info: PluginInfo, pattern: str) -> None:
    """Empty name or type, or no connection info, is an InvalidPluginError naming the field."""
    async with Registry() as registry:
        with pytest.raises(InvalidPluginError, match=pattern) as caught:
            await registry.register_plugin(info)
        assert isinstance(caught.value, ValueError)
        assert await registry.list_plugins("csi-node") == []


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("", r"socket_path must be an absolute Unix socket path of at most 107 bytes, got ''"),
        ("run/p.sock", r"'run/p.sock' is relative; expected an absolute path \(at most 107 bytes\)"),
        ("/" + "s" * 107, r"is 108 bytes; the Unix socket limit is 107 bytes"),
    ],
)
async def test_register_rejects_bad_socket_paths(path: str, pattern: str) -> None:
    """Relative, empty and over-long socket paths are rejected naming the path and the 107-byte limit."""
    async with Registry() as registry:
        with pytest.raises(InvalidPluginError, match=pattern):
            await registry.register_plugin(
                make_info(socket_path=path or "/placeholder").model_copy(
                    update={"connection_info": PluginConnectionInfo(socket_path=path)}
                )
            )


async def test_socket_path_of_exactly_107_bytes_is_accepted() -> None:
    """The limit is inclusive: a 107-byte path registers."""
    async with Registry() as registry:
        await registry.register_plugin(make_info(socket_path="/" + "s" * 106))
        assert len(await registry.list_plugins("csi-node")) == 1


_ARITY = {"deregister": 3, "plugin_for_alloc": 3, "dispense": 2, "wait": 2, "list": 1}
_METHOD = {
    "deregister": "deregister_plugin",
    "dispense": "dispense_plugin",
    "plugin_for_alloc": "plugin_for_alloc",
    "wait": "wait_for_plugin",
    "list": "list_plugins",
}


@pytest.mark.parametrize(("call", "empty"), [(call, i) for call, arity in _ARITY.items() for i in range(arity)])
async def test_lookups_reject_empty_arguments(call: str, empty: int) -> None:
    """Every lookup with an empty argument raises InvalidPluginError naming that argument."""
    args = ["csi-node", "hostpath", "alloc-1"][: _ARITY[call]]
    names = ["ptype", "name", "alloc_id"]
    args[empty] = ""
    async with Registry(dispensers={"csi-node": lambda i: i}) as registry:
        method: Callable[..., Awaitable[object]] = getattr(registry, _METHOD[call])
        with pytest.raises(InvalidPluginError, match=f"^{names[empty]} must be a non-empty string, got ''"):
            await method(*args)


async def test_dispense_without_dispenser_names_the_type_and_the_known_ones() -> None:
    """NoDispenserError names the type asked for and the types that have a dispenser."""
    async with Registry(dispensers={"csi-node": lambda i: i, "csi-controller": lambda i: i}) as registry:
        await registry.register_plugin(make_info(ptype="device"))
        with pytest.raises(
            NoDispenserError, match=r"'device'; types with a dispenser: \['csi-controller', 'csi-node'\]"
        ):
            await registry.dispense_plugin("device", "hostpath")


async def test_dispense_unknown_plugin_is_not_found() -> None:
    """Dispensing a name with no registration is a PluginNotFoundError (a LookupError)."""
    async with Registry(dispensers={"csi-node": lambda i: i}) as registry:
        await registry.register_plugin(make_info(name="present"))
        with pytest.raises(PluginNotFoundError, match=r"'missing'.*\['present'\]") as caught:
            await registry.dispense_plugin("csi-node", "missing")
        assert isinstance(caught.value, LookupError)


async def test_failing_dispenser_is_wrapped_with_its_cause() -> None:
    """A dispenser that raises surfaces as DispenseError with the original as __cause__."""
    boom = OSError("socket gone")

    def dispenser(info: PluginInfo) -> None:
        raise boom

    async with Registry(dispensers={"csi-node": dispenser}) as registry:
        await registry.register_plugin(make_info())
        with pytest.raises(DispenseError, match=r"'csi-node'.*'hostpath'.*socket gone") as caught:
            await registry.dispense_plugin("csi-node", "hostpath")
        assert caught.value.__cause__ is boom


async def test_every_call_after_shutdown_raises_registry_closed() -> None:
    """After shutdown() every entry point raises RegistryClosedError."""
    async with Registry(dispensers={"csi-node": lambda i: i}) as registry:
        await registry.register_plugin(make_info())
    calls: list[Any] = [
        registry.register_plugin(make_info()),
        registry.deregister_plugin("csi-node", "hostpath", "alloc-1"),
        registry.list_plugins("csi-node"),
        registry.dispense_plugin("csi-node", "hostpath"),
        registry.plugin_for_alloc("csi-node", "hostpath", "alloc-1"),
        registry.wait_for_plugin("csi-node", "hostpath"),
    ]
    for call in calls:
        with pytest.raises(RegistryClosedError, match="shut down"):
            await call
    with pytest.raises(RegistryClosedError):
        async with registry.subscribe("csi-node"):
            pass


async def test_calls_before_entering_explain_how_to_open() -> None:
    """Using a Registry that was never entered raises RegistryClosedError saying to use `async with`."""
    registry = Registry()
    with pytest.raises(RegistryClosedError, match="async with Registry"):
        await registry.list_plugins("csi-node")


async def test_subscribe_validates_its_arguments() -> None:
    """subscribe rejects an empty type, a negative since and a non-positive buffer by name."""
    async with Registry() as registry:
        with pytest.raises(InvalidPluginError, match="ptype"):
            registry.subscribe("")
        with pytest.raises(InvalidPluginError, match="since must be None or a seq >= 0, got -1"):
            registry.subscribe("csi-node", since=-1)
        with pytest.raises(InvalidPluginError, match="buffer must be a positive number of events, got 0"):
            registry.subscribe("csi-node", buffer=0)
