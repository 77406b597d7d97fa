"""Wire ⇄ domain conversion for CSI: betterproto messages of ``csi.v1`` ⇄ the pydantic models of this package.

Pure functions. The domain models carry the CSI field names unchanged, so one walk over the message's fields
converts every message; what differs is only representation:

- enums travel by value on the wire and by name in the models; a value this version does not know (a newer plugin)
  becomes ``UNKNOWN``, which every CSI enum has;
- a message field that is absent on the wire (or a oneof member not chosen) is left out, so the model's default
  (``None``) or its REQUIRED check applies; wrapper types (``BoolValue``, ``Int64Value``) are ``X | None`` both ways;
- repeated fields are tuples in the models, maps are dicts, :class:`Secrets` becomes a plain map on the wire.

Reply models are validated as a whole, so a violation is reported with the full path of the field
(``entries[1].volume.volume_id``): see :func:`describe_validation_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import betterproto
from pydantic import BaseModel, ValidationError

__all__ = ["data_from_wire", "describe_validation_error", "from_wire", "to_wire"]

_M = TypeVar("_M", bound=BaseModel)
_W = TypeVar("_W", bound=betterproto.Message)

_UNKNOWN = "UNKNOWN"


# --- wire → domain -------------------------------------------------------------------------------------------------


def _meta(message: Any) -> Any:
    """betterproto's per-class field metadata (its typing of the class property confuses mypy)."""
    return message._betterproto


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else _UNKNOWN


def _chosen(message: betterproto.Message, name: str) -> bool:
    """Whether ``name`` is the chosen member of its oneof (betterproto refuses to read the others)."""
    group = _meta(message).oneof_group_by_field.get(name)
    return group is None or betterproto.which_one_of(message, group)[0] == name


def data_from_wire(message: betterproto.Message) -> dict[str, Any]:
    """A wire message as plain data (nested dicts, lists, enum names) shaped like the domain model."""
    data: dict[str, Any] = {}
    meta = _meta(message)
    for name, field_meta in meta.meta_by_field_name.items():
        if not _chosen(message, name):
            continue
        value = getattr(message, name)
        kind = field_meta.proto_type
        if kind == betterproto.TYPE_MESSAGE:
            if field_meta.wraps is not None or isinstance(value, datetime):
                if value is not None:
                    data[name] = value
            elif isinstance(value, list):
                data[name] = [data_from_wire(item) for item in value]
            elif field_meta.group is not None or betterproto.serialized_on_wire(value):
                data[name] = data_from_wire(value)
        elif kind == betterproto.TYPE_ENUM:
            data[name] = [_enum_name(v) for v in value] if isinstance(value, list) else _enum_name(value)
        elif kind == betterproto.TYPE_MAP:
            data[name] = dict(value)
        else:
            data[name] = list(value) if isinstance(value, list) else value
    return data


def from_wire(message: betterproto.Message, model: type[_M]) -> _M:
    """A wire message as the domain ``model``; raises pydantic's ``ValidationError`` when it breaks the spec."""
    return model.model_validate(data_from_wire(message))


# --- domain → wire -------------------------------------------------------------------------------------------------


def _value_to_wire(value: Any, kind: str, wire_type: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_wire(value, wire_type)
    if isinstance(value, Enum):
        return wire_type.from_string(value.value)
    if kind == betterproto.TYPE_ENUM and isinstance(value, str):
        return wire_type.from_string(value)
    return value


def to_wire(model: BaseModel, wire_type: type[_W]) -> _W:
    """A domain model as the wire message ``wire_type``; unset (``None``) fields stay unset."""
    meta = _meta(wire_type)
    kwargs: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None:
            continue
        field_meta = meta.meta_by_field_name[name]
        kind = field_meta.proto_type
        if kind == betterproto.TYPE_MAP:
            kwargs[name] = dict(value)
            continue
        nested = meta.cls_by_field.get(name)
        if isinstance(value, tuple | list):
            kwargs[name] = [_value_to_wire(item, kind, nested) for item in value]
        else:
            kwargs[name] = _value_to_wire(value, kind, nested)
    return wire_type(**kwargs)


# --- errors --------------------------------------------------------------------------------------------------------


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_EXPECTED: Mapping[str, str] = {
    "missing": "is missing, expected it to be set",
    "string_too_short": "is empty, expected a non-empty string",
    "too_short": "is empty, expected at least one entry",
    "greater_than_equal": "is negative, expected a value >= 0",
}


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem, ``field 'a.b[0].c' is empty, expected ...``, never quoting the offending value."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        path = _path(tuple(error["loc"]))
        what = _EXPECTED.get(error["type"])
        if what is None:
            message = str(error["msg"]).removeprefix("Value error, ")
            what = message if error["type"] == "value_error" else f"is invalid: {message}"
        lines.append(f"field '{path}' {what}" if path else what)
    return lines
