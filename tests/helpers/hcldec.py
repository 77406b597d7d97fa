"""A ``config {}`` block as a Nomad agent hands it to a plugin: decoded against the plugin's hclspec (hcldec), in the
shape cty's msgpack encoding gives it.

The block is written as Python values: an attribute as its value, a block as a mapping of its body, repeated blocks
as a list of mappings. The result has every property of the spec, in name order as cty writes an object: None where
the block set nothing (cty null), None for an absent block, an empty list for an absent block list, and a
``default``'s literal where its attribute is unset. A key the spec does not name, a missing required attribute or a
value of the wrong type is a ``ValueError``, as Nomad refuses such a job (or agent config) before any plugin sees it.
Only the node kinds the project's plugins use are supported (object, attr, block, block_list, default, literal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from plugin_host.base import hclspec

__all__ = ["hcldec"]

_PRIMITIVES: dict[str, tuple[type, ...]] = {"string": (str,), "bool": (bool,), "number": (int, float)}


def _check_type(type_expr: str, value: Any, where: str) -> None:
    if type_expr.startswith("list(") and type_expr.endswith(")"):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list; got {type(value).__name__}")
        for index, item in enumerate(value):
            _check_type(type_expr[len("list(") : -1], item, f"{where}[{index}]")
        return
    wanted = _PRIMITIVES.get(type_expr)
    if wanted is None:
        raise ValueError(f"{where}: hcldec helper does not know the type {type_expr!r}")
    if not isinstance(value, wanted) or (type_expr == "number" and isinstance(value, bool)):
        raise ValueError(f"{where}: expected a {type_expr}; got {type(value).__name__}")


def _names(spec: hclspec.Spec) -> set[str]:
    """The attribute and block names ``spec`` reads from one body."""
    if isinstance(spec, hclspec.Object):
        return {name for key, nested in spec.attributes.items() for name in _names_in(key, nested)}
    if isinstance(spec, hclspec.Default):
        return _names(spec.primary)
    if isinstance(spec, hclspec.Attr | hclspec.Block | hclspec.BlockList):
        return {spec.name}
    return set()


def _names_in(key: str, spec: hclspec.Spec) -> set[str]:
    if isinstance(spec, hclspec.Attr) and not spec.name:
        return {key}
    return _names(spec)


def _literal(spec: hclspec.Literal) -> Any:
    return json.loads(spec.value)


def _decode(spec: hclspec.Spec, body: Mapping[str, Any], where: str, key: str = "") -> Any:
    if isinstance(spec, hclspec.Object):
        unknown = sorted(set(body) - _names(spec))
        if unknown:
            raise ValueError(f"{where}: an argument or block named {unknown[0]!r} is not expected here")
        return {name: _decode(spec.attributes[name], body, where, name) for name in sorted(spec.attributes)}
    if isinstance(spec, hclspec.Default):
        value = _decode(spec.primary, body, where, key)
        if value is None and isinstance(spec.default, hclspec.Literal):
            return _literal(spec.default)
        return value
    if isinstance(spec, hclspec.Literal):
        return _literal(spec)
    if isinstance(spec, hclspec.Attr):
        name = spec.name or key
        if name not in body:
            if spec.required:
                raise ValueError(f"{where}: the argument {name!r} is required")
            return None
        _check_type(spec.type, body[name], f"{where}.{name}")
        return list(body[name]) if isinstance(body[name], tuple) else body[name]
    if isinstance(spec, hclspec.Block):
        block = body.get(spec.name)
        if block is None:
            if spec.required:
                raise ValueError(f"{where}: a {spec.name!r} block is required")
            return None
        if not isinstance(block, Mapping) or spec.nested is None:
            raise ValueError(f"{where}.{spec.name}: expected one block (a mapping)")
        return _decode(spec.nested, block, f"{where}.{spec.name}")
    if isinstance(spec, hclspec.BlockList):
        blocks = body.get(spec.name, [])
        if isinstance(blocks, Mapping):
            blocks = [blocks]
        if spec.nested is None:
            raise ValueError(f"{where}.{spec.name}: the spec has no nested body")
        if len(blocks) < spec.min_items or (spec.max_items and len(blocks) > spec.max_items):
            raise ValueError(f"{where}.{spec.name}: {len(blocks)} blocks is out of the spec's bounds")
        nested = spec.nested
        return [_decode(nested, block, f"{where}.{spec.name}[{index}]") for index, block in enumerate(blocks)]
    raise ValueError(f"{where}: hcldec helper does not support {spec.kind!r} nodes")


def hcldec(spec: hclspec.Spec, body: Mapping[str, Any], *, where: str = "config") -> Any:
    """``body`` decoded against ``spec`` as Nomad does, in cty's shape (see the module docstring)."""
    return _decode(spec, body, where)
