"""Lazy re-exports for package ``__init__`` modules (PEP 562): a public name is imported when first used.

A package lists where each name lives; ``import plugin_host.device`` then costs one small module, and a plugin
process or a CLI subcommand loads only what it touches. Type checkers read the same names from a
``TYPE_CHECKING`` block of plain imports in the package, which also keeps the two lists honest (a test compares
them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each name to the module that defines it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    names = sorted({*namespace, *public})

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
