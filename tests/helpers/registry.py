"""Builders shared by the registry and state tests."""

from __future__ import annotations

from plugin_host import PluginConnectionInfo, PluginInfo


def make_info(
    name: str = "hostpath",
    ptype: str = "csi-node",
    alloc_id: str = "alloc-1",
    socket_path: str | None = None,
    version: str = "1.0.0",
    **options: str,
) -> PluginInfo:
    """A valid registration; the socket path defaults to one derived from name and alloc."""
    return PluginInfo(
        name=name,
        type=ptype,
        version=version,
        alloc_id=alloc_id,
        connection_info=PluginConnectionInfo(socket_path=socket_path or f"/run/csi/{name}-{alloc_id}.sock"),
        options=dict(options),
    )


class RegistryModel:
    """A plain-dict model of the registry's documented semantics, for checking the real one."""

    def __init__(self) -> None:
        self.regs: dict[tuple[str, str, str], tuple[int, PluginInfo]] = {}
        self.seq = 0

    def register(self, info: PluginInfo) -> None:
        """New alloc → registered; same alloc with changes → updated in place; identical → nothing."""
        key = (info.type, info.name, info.alloc_id)
        if key in self.regs:
            position, old = self.regs[key]
            if old == info:
                return
            self.seq += 1
            self.regs[key] = (position, info)
        else:
            self.seq += 1
            self.regs[key] = (self.seq, info)

    def deregister(self, ptype: str, name: str, alloc_id: str) -> None:
        """Known alloc → removed with an event; unknown → nothing."""
        if self.regs.pop((ptype, name, alloc_id), None) is not None:
            self.seq += 1

    def listing(self, ptype: str) -> list[PluginInfo]:
        """Newest registration per name, sorted by name."""
        newest: dict[str, tuple[int, PluginInfo]] = {}
        for (t, name, _), (position, info) in self.regs.items():
            if t == ptype and (name not in newest or position > newest[name][0]):
                newest[name] = (position, info)
        return [newest[name][1] for name in sorted(newest)]


def churn_ops(seed: int, count: int, prefix: str = "") -> list[tuple[str, PluginInfo]]:
    """A deterministic sequence of register/deregister operations over a few names (``prefix`` first) and allocs."""
    import random

    rng = random.Random(seed)
    ops: list[tuple[str, PluginInfo]] = []
    for _ in range(count):
        info = make_info(
            name=f"{prefix}p{rng.randrange(4)}",
            alloc_id=f"a{rng.randrange(3)}",
            version=str(rng.randrange(3)),
        )
        ops.append(("register" if rng.random() < 0.6 else "deregister", info))
    return ops


def apply_ops(model: RegistryModel, ops: list[tuple[str, PluginInfo]]) -> RegistryModel:
    """Apply churn operations to a model and return it."""
    for kind, info in ops:
        if kind == "register":
            model.register(info)
        else:
            model.deregister(info.type, info.name, info.alloc_id)
    return model


def task_ops(seed: int, task: int, count: int) -> list[tuple[str, PluginInfo]]:
    """The churn of one of several concurrent tasks: plugin names of its own (``t<task>p<n>``)."""
    return churn_ops(seed * 1000 + task, count, prefix=f"t{task}")
