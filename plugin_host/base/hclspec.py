"""Nomad's hclspec tree (``plugins/shared/hclspec``): how a plugin describes its HCL ``config {}`` block.

The agent decodes the user's block against this tree with hcldec semantics and hands the result to the plugin's
``set_config``. Every node is a frozen pydantic model with a ``kind`` tag, so a whole tree also validates from plain
dicts. Build trees with the small constructors at the bottom::

    spec = hclspec.obj({
        "dir": hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')),
        "list_period": hclspec.default(hclspec.attr("list_period", "string"), hclspec.literal('"5s"')),
    })
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Array",
    "Attr",
    "Block",
    "BlockAttrs",
    "BlockList",
    "BlockMap",
    "BlockSet",
    "Default",
    "Literal",
    "Object",
    "Spec",
    "array",
    "attr",
    "block",
    "block_attrs",
    "block_list",
    "block_map",
    "block_set",
    "default",
    "literal",
    "obj",
]


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Object(_Node):
    """An object whose properties are decoded by the nested specs, keyed by property name."""

    kind: typing.Literal["object"] = "object"
    attributes: dict[str, Spec] = {}


class Array(_Node):
    """A list whose elements are decoded by the nested specs, in order."""

    kind: typing.Literal["array"] = "array"
    values: tuple[Spec, ...] = ()


class Attr(_Node):
    """One attribute. ``type`` is an HCL type expression (``"string"``, ``"list(number)"``, ...).

    ``name`` may be empty inside an :class:`Object`, which then uses the property name.
    """

    kind: typing.Literal["attr"] = "attr"
    name: str = ""
    type: str = ""
    required: bool = False


class Block(_Node):
    """Zero or one nested block (exactly one when ``required``), decoded with ``nested``."""

    kind: typing.Literal["block"] = "block"
    name: str = ""
    required: bool = False
    nested: Spec | None = None


class BlockAttrs(_Node):
    """A block whose attributes become a map of values of ``type``."""

    kind: typing.Literal["block_attrs"] = "block_attrs"
    name: str = ""
    type: str = ""
    required: bool = False


class BlockList(_Node):
    """Any number of blocks, in order; ``min_items``/``max_items`` of 0 mean no bound."""

    kind: typing.Literal["block_list"] = "block_list"
    name: str = ""
    min_items: int = Field(default=0, ge=0)
    max_items: int = Field(default=0, ge=0)
    nested: Spec | None = None


class BlockSet(_Node):
    """Like :class:`BlockList`, unordered and without duplicates."""

    kind: typing.Literal["block_set"] = "block_set"
    name: str = ""
    min_items: int = Field(default=0, ge=0)
    max_items: int = Field(default=0, ge=0)
    nested: Spec | None = None


class BlockMap(_Node):
    """Labelled blocks; each label adds one level of map keyed by the label's value."""

    kind: typing.Literal["block_map"] = "block_map"
    name: str = ""
    labels: tuple[str, ...] = ()
    nested: Spec | None = None


class Literal(_Node):
    """A constant. ``value`` is an HCL expression: ``'"text"'`` for a string, ``"true"``, ``"5"``."""

    kind: typing.Literal["literal"] = "literal"
    value: str


class Default(_Node):
    """The result of ``primary``, or of ``default`` when ``primary`` yields null."""

    kind: typing.Literal["default"] = "default"
    primary: Spec
    default: Spec


Spec: TypeAlias = Annotated[
    Object | Array | Attr | Block | BlockAttrs | BlockList | BlockSet | BlockMap | Literal | Default,
    Field(discriminator="kind"),
]
"""Any node of an hclspec tree."""

for _model in (Object, Array, Block, BlockList, BlockSet, BlockMap, Default):
    _model.model_rebuild()


def obj(attributes: Mapping[str, Spec]) -> Object:
    """An :class:`Object` with the given properties."""
    return Object(attributes=dict(attributes))


def array(values: Iterable[Spec]) -> Array:
    """An :class:`Array` of the given element specs."""
    return Array(values=tuple(values))


def attr(name: str, type: str, required: bool = False) -> Attr:
    """An :class:`Attr` named ``name`` of HCL type ``type``."""
    return Attr(name=name, type=type, required=required)


def block(name: str, nested: Spec, required: bool = False) -> Block:
    """A :class:`Block` named ``name`` decoded with ``nested``."""
    return Block(name=name, nested=nested, required=required)


def block_attrs(name: str, type: str, required: bool = False) -> BlockAttrs:
    """A :class:`BlockAttrs` whose attribute values have HCL type ``type``."""
    return BlockAttrs(name=name, type=type, required=required)


def block_list(name: str, nested: Spec, min_items: int = 0, max_items: int = 0) -> BlockList:
    """A :class:`BlockList` of blocks named ``name``."""
    return BlockList(name=name, nested=nested, min_items=min_items, max_items=max_items)


def block_set(name: str, nested: Spec, min_items: int = 0, max_items: int = 0) -> BlockSet:
    """A :class:`BlockSet` of blocks named ``name``."""
    return BlockSet(name=name, nested=nested, min_items=min_items, max_items=max_items)


def block_map(name: str, labels: Iterable[str], nested: Spec) -> BlockMap:
    """A :class:`BlockMap` of blocks named ``name`` with the given label names."""
    return BlockMap(name=name, labels=tuple(labels), nested=nested)


def literal(value: str) -> Literal:
    """A :class:`Literal` HCL expression, e.g. ``literal('"."')`` for the string ``"."``."""
    return Literal(value=value)


def default(primary: Spec, default: Spec) -> Default:
    """A :class:`Default`: ``primary``, falling back to ``default``."""
    return Default(primary=primary, default=default)
