"""Strict decoding of what hosted Kubernetes device plugins send: a reply either decodes to a well-typed message or
raises ``ValueError``.

betterproto raises whatever it stumbles on when bytes do not decode: ``EOFError`` or ``ValueError`` for a truncated
varint or invalid UTF-8, ``KeyError``, ``AttributeError`` or ``OverflowError`` elsewhere. Worse, a known field sent
with another wire type than its own is often accepted and stored as is: an ``int`` where a string or a message
belongs, a ``list`` for a ``bool``. Such a value fails much later, far from the call (a pydantic error while
converting, or an ``AttributeError``). :func:`wire_type_problem` finds those values; :func:`strict_reply` makes a
reply type for grpclib (whose codec calls ``FromString`` on the reply type it is given) that raises ``ValueError``
for both kinds of bad reply. The shared client edge (:func:`plugin_host._grpc_client.grpc_errors`) turns that
``ValueError`` into :class:`~plugin_host.errors.PluginProtocolError` naming the plugin and the RPC.

Protobuf's own parsers keep a field with an unexpected wire type as an unknown field; refusing the message instead
is stricter, and only a broken plugin sends one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar, cast

from betterproto import PLACEHOLDER

__all__ = ["strict_reply", "wire_type_problem"]

M = TypeVar("M")

_INTEGERS = frozenset(
    {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "enum"}
)
_SCALARS: dict[str, type[Any]] = {"bool": bool, "string": str, "bytes": bytes, "float": float, "double": float}


def _value_problem(value: Any, proto_type: str, message_type: type[Any] | None, where: str) -> str | None:
    if proto_type == "message":
        if message_type is None or not isinstance(value, message_type):
            return f"{where} is {type(value).__name__}, expected a {getattr(message_type, '__name__', 'message')}"
        return wire_type_problem(value, where)
    if proto_type in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where} is {type(value).__name__}, expected {proto_type}"
        return None
    expected = _SCALARS.get(proto_type)
    if expected is not None and not isinstance(value, expected):
        return f"{where} is {type(value).__name__}, expected {proto_type}"
    return None


def wire_type_problem(message: Any, where: str = "") -> str | None:
    """What in a decoded betterproto ``message`` does not have its field's type (first found), or None."""
    meta = message._betterproto
    for field in dataclasses.fields(message):
        field_meta = field.metadata.get("betterproto")
        if field_meta is None:
            continue
        # Read without betterproto's __getattribute__, which would store a default in an unset field (is_set flips).
        value = object.__getattribute__(message, field.name)
        if value is PLACEHOLDER or (value is None and (field_meta.optional or field_meta.proto_type == "message")):
            continue
        name = f"{where}.{field.name}" if where else field.name
        if field_meta.proto_type == "map":
            if not isinstance(value, dict):
                return f"{name} is {type(value).__name__}, expected a map"
            key_type, value_type = field_meta.map_types
            for key, item in value.items():
                problem = _value_problem(key, key_type, None, f"{name} key") or _value_problem(
                    item, value_type, meta.cls_by_field.get(f"{field.name}.value"), f"{name}[{key!r}]"
                )
                if problem is not None:
                    return problem
        elif meta.default_gen[field.name] is list:
            if not isinstance(value, list):
                return f"{name} is {type(value).__name__}, expected a repeated field"
            for index, item in enumerate(value):
                problem = _value_problem(
                    item, field_meta.proto_type, meta.cls_by_field.get(field.name), f"{name}[{index}]"
                )
                if problem is not None:
                    return problem
        else:
            problem = _value_problem(value, field_meta.proto_type, meta.cls_by_field.get(field.name), name)
            if problem is not None:
                return problem
    return None


class _StrictReply:
    """Base of the reply types :func:`strict_reply` makes: decodes as ``message_type`` or raises ``ValueError``."""

    message_type: ClassVar[type[Any]]

    @classmethod
    def FromString(cls, data: bytes) -> Any:
        name = cls.message_type.__name__
        try:
            message = cls.message_type.FromString(data)
        except Exception as exc:  # betterproto raises anything from EOFError to AttributeError on bad input
            raise ValueError(f"{len(data)} bytes that are not a valid {name} ({type(exc).__name__}: {exc})") from exc
        problem = wire_type_problem(message)
        if problem is not None:
            raise ValueError(f"{len(data)} bytes that are not a valid {name}: {problem}")
        return message


_CLASSES: dict[type[Any], type[Any]] = {}


def strict_reply(message_type: type[M]) -> type[M]:
    """The reply type to give grpclib for ``message_type``: same messages, ``ValueError`` for any bad reply."""
    cls = _CLASSES.get(message_type)
    if cls is None:
        cls = _CLASSES[message_type] = type(
            f"Strict{message_type.__name__}", (_StrictReply,), {"message_type": message_type}
        )
    return cast("type[M]", cls)
