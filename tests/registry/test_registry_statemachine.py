"""A hypothesis state machine drives the durable registry against a plain-dict model, restarts included."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from anyio.from_thread import BlockingPortal, start_blocking_portal
from helpers.registry import RegistryModel, make_info
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from plugin_host import PluginInfo, Registry, SqliteStateStore

names = st.sampled_from(["alpha", "beta", "gamma"])
allocs = st.sampled_from(["a1", "a2", "a3"])
ptypes = st.sampled_from(["csi-node", "csi-controller"])
versions = st.sampled_from(["1", "2"])


class RegistryMachine(RuleBasedStateMachine):
    """Registers, deregisters and restarts; after every step the registry equals the model."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ph-sm-"))
        self.model = RegistryModel()
        self.portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self.portal = self.portal_cm.__enter__()
        self.open_cms: list[AbstractContextManager[Any]] = []
        self.registry = self._open()

    def _open(self) -> Registry:
        store_cm = self.portal.wrap_async_context_manager(SqliteStateStore(self.dir / "state.db", synchronous="normal"))
        store = store_cm.__enter__()
        registry_cm = self.portal.wrap_async_context_manager(Registry(state=store))
        registry = registry_cm.__enter__()
        self.open_cms = [registry_cm, store_cm]
        return registry

    def _close(self) -> None:
        for cm in self.open_cms:
            cm.__exit__(None, None, None)
        self.open_cms = []

    @rule(ptype=ptypes, name=names, alloc=allocs, version=versions)
    def register(self, ptype: str, name: str, alloc: str, version: str) -> None:
        """Register (or re-register) a plugin."""
        info = make_info(name=name, ptype=ptype, alloc_id=alloc, version=version)
        self.portal.call(self.registry.register_plugin, info)
        self.model.register(info)

    @rule(ptype=ptypes, name=names, alloc=allocs)
    def deregister(self, ptype: str, name: str, alloc: str) -> None:
        """Deregister a plugin, known or not."""
        self.portal.call(self.registry.deregister_plugin, ptype, name, alloc)
        self.model.deregister(ptype, name, alloc)

    @rule()
    def restart(self) -> None:
        """Close the registry and the state file, then open both again."""
        self._close()
        self.registry = self._open()

    @invariant()
    def matches_model(self) -> None:
        """Listings, every registration and the seq agree with the model."""
        for ptype in ("csi-node", "csi-controller"):
            listing: list[PluginInfo] = self.portal.call(self.registry.list_plugins, ptype)
            assert listing == self.model.listing(ptype)
        for (ptype, name, alloc), (_, info) in self.model.regs.items():
            assert self.portal.call(self.registry.plugin_for_alloc, ptype, name, alloc) == info
        assert self.registry.last_seq == self.model.seq

    def teardown(self) -> None:
        self._close()
        self.portal_cm.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)


RegistryMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRegistryMachine = RegistryMachine.TestCase
