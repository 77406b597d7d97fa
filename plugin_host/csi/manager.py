"""CsiManager: supervises the registry's CSI plugins (Nomad's ``client/pluginmanager/csimanager``, async).

For every ``csi-controller`` and ``csi-node`` plugin in the registry (the newest registration of each name, as
Nomad does) the manager fingerprints the plugin: ``GetPluginInfo``, ``GetPluginCapabilities``, ``Probe``, then
``ControllerGetCapabilities`` for a controller, or ``NodeGetInfo`` and ``NodeGetCapabilities`` for a node. While
the plugin stays healthy it only calls ``Probe``, every ``probe_interval`` seconds; a failed call or a Probe that
says "not ready" makes it unhealthy, and the next round that gets through fingerprints it afresh (it may have been
restarted as another version). Health changes are published as :class:`CsiPluginHealth` records.

Plugins already in the registry when the manager starts (restored from the state file) are fingerprinted like new
ones. A deregistered plugin's supervision stops, its last record (``supervised=False``) is published, and its
socket's shared channel is closed once no other supervised plugin uses that socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus

from plugin_host._hub import SubscriptionHub
from plugin_host._service import TaskGroupService
from plugin_host._text import truncated
from plugin_host.csi._dispense import CsiClients
from plugin_host.csi._health import CsiCapabilities, CsiPluginHealth
from plugin_host.csi._health_subscribers import CsiHealthChanges, health_changes
from plugin_host.csi.client import CsiClient
from plugin_host.errors import ConfigError, PluginHostError, RegistryClosedError, SubscriberLaggedError
from plugin_host.registry.models import PLUGIN_TYPE_CSI_CONTROLLER, PLUGIN_TYPE_CSI_NODE, PluginInfo
from plugin_host.registry.registry import Registry

__all__ = ["CSI_PLUGIN_TYPES", "CsiManager"]

_log = logging.getLogger(__name__)

CSI_PLUGIN_TYPES = (PLUGIN_TYPE_CSI_CONTROLLER, PLUGIN_TYPE_CSI_NODE)
"""The registry plugin types the manager supervises."""

_Key = tuple[str, str]


@dataclass
class _Instance:
    """The supervision of one registration."""

    info: PluginInfo
    health: CsiPluginHealth
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)

    @property
    def socket_path(self) -> str:
        assert self.info.connection_info is not None
        return self.info.connection_info.socket_path


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {truncated(value)}")
    return float(value)


class CsiManager(TaskGroupService):
    """Fingerprints and probes the CSI plugins of ``registry``; ``async with CsiManager(registry) as manager:``.

    ``call_timeout`` is the deadline of each call to a plugin (default: ``probe_interval``, at most 10 s), so a
    plugin that hangs is unhealthy within about one interval. ``clients`` is the shared channel cache (the host
    passes the one its registry dispenses from); without it the manager keeps its own. ``close_timeout`` bounds the
    stopping of one plugin's supervision.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        probe_interval: float = 30.0,
        call_timeout: float | None = None,
        clients: CsiClients | None = None,
        close_timeout: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(registry, Registry):
            raise ConfigError(f"registry must be a Registry, got {type(registry).__name__}")
        self._probe_interval = _positive("probe_interval", probe_interval)
        self._call_timeout = (
            min(self._probe_interval, 10.0) if call_timeout is None else _positive("call_timeout", call_timeout)
        )
        self._close_timeout = _positive("close_timeout", close_timeout)
        if clients is not None and not isinstance(clients, CsiClients):
            raise ConfigError(f"clients must be CsiClients, got {type(clients).__name__}")
        self._registry = registry
        self._given_clients = clients
        self._clients: CsiClients | None = None
        self._logger = logger if logger is not None else _log
        self._instances: dict[_Key, _Instance] = {}
        self._hub = SubscriptionHub[CsiPluginHealth]()
        self._lock = anyio.Lock()
        self._owned_clients: CsiClients | None = None
        super().__init__()

    @property
    def probe_interval(self) -> float:
        """Seconds between two probes of a plugin."""
        return self._probe_interval

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return PluginHostError(f"this CsiManager was already {lifecycle}; create a new one")

    async def _service_prepare(self) -> None:
        if self._given_clients is not None:
            self._clients = self._given_clients
        else:
            # Ours to close, after the task group (whose supervisors use it) is done.
            self._clients = self._owned_clients = await CsiClients(timeout=self._call_timeout).__aenter__()

    async def _service_start(self, tg: TaskGroup) -> None:
        for ptype in CSI_PLUGIN_TYPES:
            await tg.start(self._follow, ptype)

    async def _service_stop(self) -> None:
        try:
            async with self._lock:
                for instance in self._instances.values():
                    instance.scope.cancel()
                with anyio.move_on_after(self._close_timeout):
                    for instance in self._instances.values():
                        await instance.done.wait()
        finally:
            self._hub.close()

    async def _service_release(self) -> None:
        clients, self._owned_clients = self._owned_clients, None
        if clients is not None:
            await clients.__aexit__(None, None, None)

    # --- what the manager knows -----------------------------------------------------------------------------------

    def snapshot(self) -> tuple[CsiPluginHealth, ...]:
        """The health of every supervised plugin, sorted by type and name."""
        return tuple(self._instances[key].health for key in sorted(self._instances))

    def health(self, ptype: str, name: str) -> CsiPluginHealth | None:
        """The health of one supervised plugin, or None when none of that type and name is supervised."""
        instance = self._instances.get((ptype, name))
        return instance.health if instance is not None else None

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[CsiHealthChanges]:
        """Health changes: the current record of every plugin first, then each change as it happens.

        The manager never waits for a subscriber; one that reads slowly gets only the newest record of each plugin.
        Iteration ends when the block is left or the manager shuts down.
        """
        changes = self._hub.add(health_changes(list(self.snapshot())))
        try:
            yield changes
        finally:
            self._hub.detach(changes)

    # --- following the registry -----------------------------------------------------------------------------------

    async def _follow(self, ptype: str, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                async with self._registry.subscribe(ptype) as events:
                    # Subscribed first, then listed: nothing registered in between is missed.
                    await self._resync(ptype)
                    if not started:
                        started = True
                        task_status.started()
                    async for event in events:
                        await self._resync(ptype, only=event.info.name)
            except SubscriberLaggedError as exc:
                self._logger.warning("CSI manager fell behind the %r registry events; listing again: %s", ptype, exc)
                continue
            except RegistryClosedError:
                if not started:
                    raise
            # The registry shut down: keep supervising what is known until the manager stops.
            if not started:
                task_status.started()
            await anyio.sleep_forever()

    async def _resync(self, ptype: str, *, only: str | None = None) -> None:
        """Make the supervised plugins of ``ptype`` (or just the name ``only``) match the registry's newest ones."""
        wanted = {info.name: info for info in await self._registry.list_plugins(ptype)}
        async with self._lock:
            if self._lifecycle != "running":
                return
            names = {only} if only is not None else set(wanted) | {n for t, n in self._instances if t == ptype}
            for name in sorted(names):
                await self._ensure(ptype, name, wanted.get(name))

    async def _ensure(self, ptype: str, name: str, info: PluginInfo | None) -> None:
        current = self._instances.get((ptype, name))
        if current is not None and current.info == info:
            return
        if current is not None:
            await self._stop(current, replaced_by=info)
        if info is not None:
            self._start(info)

    def _start(self, info: PluginInfo) -> None:
        assert self._tg is not None
        health = CsiPluginHealth(
            name=info.name,
            type=info.type,
            healthy=False,
            description="not fingerprinted yet",
            socket_path=info.connection_info.socket_path if info.connection_info is not None else "",
            alloc_id=info.alloc_id,
            version=info.version,
        )
        instance = _Instance(info=info, health=health)
        self._instances[(info.type, info.name)] = instance
        self._hub.publish(health)
        self._logger.info(
            "supervising %s plugin %r (alloc %r) at %s", info.type, info.name, info.alloc_id, health.socket_path
        )
        self._tg.start_soon(self._supervise, instance, name=f"CSI {info.type} {info.name}")

    async def _stop(self, instance: _Instance, *, replaced_by: PluginInfo | None) -> None:
        key = (instance.info.type, instance.info.name)
        instance.scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._close_timeout):
            await instance.done.wait()
        del self._instances[key]
        if replaced_by is None:
            final = instance.health.model_copy(
                update={"healthy": False, "description": "deregistered; supervision stopped", "supervised": False}
            )
            self._hub.publish(final)
        self._logger.info("stopped supervising %s plugin %r (alloc %r)", key[0], key[1], instance.info.alloc_id)
        # The shared channel goes only with the last user of the socket: a registration replacing this one on the
        # same socket (a new alloc, a new version) keeps it, so the clients callers hold stay open.
        users = [other.socket_path for other in self._instances.values()]
        if replaced_by is not None and replaced_by.connection_info is not None:
            users.append(replaced_by.connection_info.socket_path)
        if instance.socket_path not in users:
            assert self._clients is not None
            await self._clients.release(instance.socket_path)

    # --- one plugin -----------------------------------------------------------------------------------------------

    async def _supervise(self, instance: _Instance) -> None:
        assert self._clients is not None
        try:
            with instance.scope:
                client = await self._clients.get(instance.socket_path)
                while True:
                    round_started = anyio.current_time()
                    self._set(instance, await self._check(client, instance))
                    await anyio.sleep_until(round_started + self._probe_interval)
        finally:
            instance.done.set()

    async def _check(self, client: CsiClient, instance: _Instance) -> CsiPluginHealth:
        """One round: a Probe while healthy, the whole fingerprint otherwise; a failure is the unhealthy record."""
        try:
            if instance.health.healthy:
                return await self._probe(client, instance.health)
            return await self._fingerprint(client, instance)
        except PluginHostError as exc:
            return instance.health.model_copy(update={"healthy": False, "description": str(exc)})
        except Exception as exc:
            # A bug on our side (or a reply we cannot read) must not end the supervision: log it, keep probing.
            if instance.health.healthy or not instance.health.description.startswith("unexpected error"):
                self._logger.exception("supervising CSI plugin %r failed unexpectedly", instance.info.name)
            description = f"unexpected error: {type(exc).__name__}: {exc}"
            return instance.health.model_copy(update={"healthy": False, "description": description})

    def _set(self, instance: _Instance, health: CsiPluginHealth) -> None:
        if health == instance.health:
            return
        was = instance.health
        instance.health = health
        key = (health.type, health.name)
        if self._instances.get(key) is instance:
            self._hub.publish(health)
        if was.healthy != health.healthy:
            if health.healthy:
                self._logger.info("%s plugin %r is healthy", health.type, health.name)
            else:
                self._logger.warning("%s plugin %r is unhealthy: %s", health.type, health.name, health.description)

    async def _probe(self, client: CsiClient, health: CsiPluginHealth) -> CsiPluginHealth:
        ready = await client.probe(timeout=self._call_timeout)
        if ready is False:
            return health.model_copy(update={"healthy": False, "description": "Probe: the plugin is not ready"})
        return health

    async def _fingerprint(self, client: CsiClient, instance: _Instance) -> CsiPluginHealth:
        """The whole fingerprint, in Nomad's order; the first failing call raises."""
        timeout = self._call_timeout
        info = await client.get_plugin_info(timeout=timeout)
        plugin_caps = (await client.get_plugin_capabilities(timeout=timeout)).capabilities
        ready = await client.probe(timeout=timeout)
        capabilities = CsiCapabilities(plugin=plugin_caps)
        node_info = None
        if instance.info.type == PLUGIN_TYPE_CSI_CONTROLLER:
            controller = (await client.controller_get_capabilities(timeout=timeout)).capabilities
            capabilities = capabilities.model_copy(update={"controller": controller})
        else:
            node_info = await client.node_get_info(timeout=timeout)
            node = (await client.node_get_capabilities(timeout=timeout)).capabilities
            capabilities = capabilities.model_copy(update={"node": node})
        healthy = ready is not False
        return instance.health.model_copy(
            update={
                "healthy": healthy,
                "description": "healthy" if healthy else "Probe: the plugin is not ready",
                "info": info,
                "capabilities": capabilities,
                "node_info": node_info,
            }
        )
