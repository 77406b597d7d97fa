"""The package's import graph: layers only import downwards, no package cycle, private modules stay private.

Read statically from the source (every ``import`` and ``from ... import`` of ``plugin_host``, including the lazy
ones inside functions), as anyio checks its ``__all__`` lists: a new import that breaks the layering fails here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugin_host"

# Bottom to top (shared/design.md §1): a module may import its own layer and the layers below it, never above.
LAYERS: list[set[str]] = [
    {
        "errors",
        "_text",
        "_version",
        "_json_limits",
        "_wire_logs",
        "_offload",
        "_sockets",
        "_backoff",
        "_service",
        "_hub",
        "_process",
        "_grpc_client",
        "_grpc_server",
        "_grpc_status",
        "_grpc_cancel",
        "_lazy",
        "_metrics",
        "_grpc_metrics",
        "_grpc_cork",
        "_proto",
    },
    {"config"},
    {"registry"},
    {"goplugin"},
    {"base"},
    {"device", "driver", "csi"},
    {"kubelet"},  # serves the DeviceManager's devices to kubelet, and hosts kubelet plugins as device plugins
    {"plugins", "fsdevice"},  # the reference plugins; fsdevice is the contract's path to plugins.fsdevice
    {"loader"},
    # The state file implements the store Protocols its owners define next to their records (registry.store,
    # driver.store, loader.store): it sits above them, and none of them imports it.
    {"state"},
    {"host_config", "admin", "telemetry"},
    {"host"},
    {"testing"},
    {"cli", "__main__"},
    {"__init__"},
]
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "_proto" not in p.relative_to(PACKAGE).parts}


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every plugin_host module ``name`` imports (a ``from X import y`` counts as X.y when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "plugin_host")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "plugin_host":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield full if full in MODULES else target


def _unit(module: str) -> str:
    """The top-level unit of ``plugin_host.x.y``: ``x`` (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


EDGES = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def test_every_top_level_unit_has_a_layer() -> None:
    """Each package and top-level module of plugin_host is placed in a layer (a new one must be placed on purpose)."""
    assert sorted({_unit(name) for name in MODULES} - set(LAYER_OF)) == []


def test_no_module_imports_a_higher_layer() -> None:
    """An import only ever goes down (or sideways within a layer)."""
    upward = [
        f"{source} -> {target}"
        for source, targets in EDGES.items()
        for target in targets
        if LAYER_OF.get(_unit(target), -1) > LAYER_OF[_unit(source)]
    ]
    assert upward == []


def test_no_package_level_import_cycle() -> None:
    """Between top-level units, the import graph is acyclic."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, targets in EDGES.items():
        for target in targets:
            if _unit(source) != _unit(target):
                graph[_unit(source)].add(_unit(target))
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(unit: str) -> None:
        if unit in visiting:
            cycles.append([*visiting[visiting.index(unit) :], unit])
            return
        if unit in done:
            return
        visiting.append(unit)
        for nxt in sorted(graph[unit]):
            visit(nxt)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)
    assert cycles == []


def _owner(private: str) -> str:
    """The package a private module belongs to: everything before its first ``_``-prefixed part."""
    parts = private.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and part != "__init__" and index > 0:
            return ".".join(parts[:index])
    return private


# Test doubles of the far side (a fake kubelet) speak the wire through the type's own converters.
PRIVATE_ALLOWED = {"plugin_host.testing": ("plugin_host.kubelet._convert", "plugin_host.kubelet._names")}


@pytest.mark.parametrize("source", sorted(EDGES))
def test_private_modules_are_imported_only_inside_their_package(source: str) -> None:
    """``plugin_host.x._y`` is imported by ``plugin_host.x`` and its submodules only (``_proto`` is for adapters)."""
    allowed = next((names for prefix, names in PRIVATE_ALLOWED.items() if source.startswith(prefix)), ())
    leaks = [
        target
        for target in EDGES[source]
        if not target.startswith("plugin_host._proto")
        and _owner(target) != target
        and not (source == _owner(target) or source.startswith(_owner(target) + "."))
        and target not in allowed
    ]
    assert leaks == []
