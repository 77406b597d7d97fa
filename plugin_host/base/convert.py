"""Wire ⇄ domain converters for the base plugin API and the shared structs (attributes, statistics, hclspec).

Pure functions, nothing else; they follow Nomad's ``plugins/base`` and ``plugins/shared/structs/util.go``. Wire
messages that carry something the domain cannot represent raise :class:`PluginProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import betterproto

from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host._proto.hashicorp.nomad.plugins.shared import hclspec as wire_hcl
from plugin_host._proto.hashicorp.nomad.plugins.shared import structs as wire_structs
from plugin_host.base import hclspec
from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER, PluginInfoResponse
from plugin_host.base.structs import Attribute, StatObject, StatValue
from plugin_host.errors import PluginProtocolError

# gRPC path prefix of the BasePlugin service (package hashicorp.nomad.plugins.base.proto).
BASE_SERVICE = "/hashicorp.nomad.plugins.base.proto.BasePlugin"

_PLUGIN_TYPES_TO_WIRE = {
    PLUGIN_TYPE_DRIVER: wire_base.PluginType.DRIVER,
    PLUGIN_TYPE_DEVICE: wire_base.PluginType.DEVICE,
}
_PLUGIN_TYPES_FROM_WIRE = {wire: name for name, wire in _PLUGIN_TYPES_TO_WIRE.items()}


def on_wire(message: Any) -> bool:
    """Whether an optional sub-message was set (betterproto fills absent ones with defaults)."""
    return message is not None and bool(betterproto.serialized_on_wire(message))


# --- plugin info ------------------------------------------------------------------------------------------------


def plugin_info_to_wire(info: PluginInfoResponse) -> Any:
    """``PluginInfoResponse`` → wire; only the device and driver types exist on the wire."""
    try:
        ptype = _PLUGIN_TYPES_TO_WIRE[info.type]
    except KeyError:
        raise PluginProtocolError(
            f"PluginInfo of plugin {info.name!r}: unknown plugin type {info.type!r}, "
            f"expected one of {sorted(_PLUGIN_TYPES_TO_WIRE)}"
        ) from None
    return wire_base.PluginInfoResponse(
        type=ptype,
        plugin_api_versions=list(info.plugin_api_versions),
        plugin_version=info.plugin_version,
        name=info.name,
    )


def plugin_info_from_wire(message: Any) -> PluginInfoResponse:
    """Wire → ``PluginInfoResponse``; an unknown plugin type is a protocol error, as in Nomad's client."""
    try:
        ptype = _PLUGIN_TYPES_FROM_WIRE[message.type]
    except KeyError:
        raise PluginProtocolError(
            f"PluginInfo of plugin {message.name!r}: unknown plugin type {message.type!r}, "
            f"expected one of {sorted(_PLUGIN_TYPES_TO_WIRE)}"
        ) from None
    return PluginInfoResponse(
        type=ptype,
        plugin_api_versions=tuple(message.plugin_api_versions),
        plugin_version=message.plugin_version,
        name=message.name,
    )


# --- hclspec ----------------------------------------------------------------------------------------------------


def _optional_spec_to_wire(spec: hclspec.Spec | None) -> dict[str, Any]:
    return {} if spec is None else {"nested": spec_to_wire(spec)}


def _optional_spec_from_wire(message: Any) -> hclspec.Spec | None:
    return spec_from_wire(message) if on_wire(message) else None


def spec_to_wire(spec: hclspec.Spec) -> Any:
    """An hclspec tree → wire ``Spec`` (a oneof per node)."""
    match spec:
        case hclspec.Object():
            return wire_hcl.Spec(
                object=wire_hcl.Object(attributes={k: spec_to_wire(v) for k, v in spec.attributes.items()})
            )
        case hclspec.Array():
            return wire_hcl.Spec(array=wire_hcl.Array(values=[spec_to_wire(v) for v in spec.values]))
        case hclspec.Attr():
            return wire_hcl.Spec(attr=wire_hcl.Attr(name=spec.name, type=spec.type, required=spec.required))
        case hclspec.Block():
            block = wire_hcl.Block(name=spec.name, required=spec.required, **_optional_spec_to_wire(spec.nested))
            return wire_hcl.Spec(block_value=block)
        case hclspec.BlockAttrs():
            attrs = wire_hcl.BlockAttrs(name=spec.name, type=spec.type, required=spec.required)
            return wire_hcl.Spec(block_attrs=attrs)
        case hclspec.BlockList():
            blist = wire_hcl.BlockList(
                name=spec.name,
                min_items=spec.min_items,
                max_items=spec.max_items,
                **_optional_spec_to_wire(spec.nested),
            )
            return wire_hcl.Spec(block_list=blist)
        case hclspec.BlockSet():
            bset = wire_hcl.BlockSet(
                name=spec.name,
                min_items=spec.min_items,
                max_items=spec.max_items,
                **_optional_spec_to_wire(spec.nested),
            )
            return wire_hcl.Spec(block_set=bset)
        case hclspec.BlockMap():
            bmap = wire_hcl.BlockMap(name=spec.name, labels=list(spec.labels), **_optional_spec_to_wire(spec.nested))
            return wire_hcl.Spec(block_map=bmap)
        case hclspec.Literal():
            return wire_hcl.Spec(literal=wire_hcl.Literal(value=spec.value))
        case hclspec.Default():
            return wire_hcl.Spec(
                default=wire_hcl.Default(primary=spec_to_wire(spec.primary), default=spec_to_wire(spec.default))
            )
    raise PluginProtocolError(f"hclspec node {spec!r}: unknown node type, expected one of the hclspec models")


def spec_from_wire(message: Any) -> hclspec.Spec:
    """Wire ``Spec`` → hclspec tree; a node with no member of its oneof set is a protocol error."""
    which, found = betterproto.which_one_of(message, "block")
    node: Any = found
    match which:
        case "object":
            return hclspec.Object(attributes={k: spec_from_wire(v) for k, v in node.attributes.items()})
        case "array":
            return hclspec.Array(values=tuple(spec_from_wire(v) for v in node.values))
        case "attr":
            return hclspec.Attr(name=node.name, type=node.type, required=node.required)
        case "block_value":
            return hclspec.Block(name=node.name, required=node.required, nested=_optional_spec_from_wire(node.nested))
        case "block_attrs":
            return hclspec.BlockAttrs(name=node.name, type=node.type, required=node.required)
        case "block_list":
            return hclspec.BlockList(
                name=node.name,
                min_items=node.min_items,
                max_items=node.max_items,
                nested=_optional_spec_from_wire(node.nested),
            )
        case "block_set":
            return hclspec.BlockSet(
                name=node.name,
                min_items=node.min_items,
                max_items=node.max_items,
                nested=_optional_spec_from_wire(node.nested),
            )
        case "block_map":
            return hclspec.BlockMap(
                name=node.name, labels=tuple(node.labels), nested=_optional_spec_from_wire(node.nested)
            )
        case "literal":
            return hclspec.Literal(value=node.value)
        case "default":
            if not (on_wire(node.primary) and on_wire(node.default)):
                raise PluginProtocolError(f"hclspec Default node {node!r}: expected both primary and default to be set")
            return hclspec.Default(primary=spec_from_wire(node.primary), default=spec_from_wire(node.default))
    raise PluginProtocolError(f"hclspec Spec node {message!r}: no member of its oneof is set, expected exactly one")


def config_schema_from_wire(message: Any) -> hclspec.Spec:
    """``ConfigSchemaResponse`` → spec. A plugin without a config block sends no spec: that is an empty object."""
    return spec_from_wire(message.spec) if on_wire(message.spec) else hclspec.Object()


# --- attributes -------------------------------------------------------------------------------------------------


def attribute_to_wire(attribute: Attribute) -> Any:
    """``Attribute`` → wire; like Nomad, the first set of int, float, string, bool fills the oneof."""
    if attribute.int_val is not None:
        return wire_structs.Attribute(int_val=attribute.int_val, unit=attribute.unit)
    if attribute.float_val is not None:
        return wire_structs.Attribute(float_val=attribute.float_val, unit=attribute.unit)
    if attribute.string_val is not None:
        return wire_structs.Attribute(string_val=attribute.string_val, unit=attribute.unit)
    if attribute.bool_val is not None:
        return wire_structs.Attribute(bool_val=attribute.bool_val, unit=attribute.unit)
    return wire_structs.Attribute(unit=attribute.unit)


def attribute_from_wire(message: Any) -> Attribute:
    """Wire ``Attribute`` → domain: the member of the oneof that is set, zero values included."""
    which, value = betterproto.which_one_of(message, "value")
    if which:
        return Attribute.model_validate({which: value, "unit": message.unit})
    return Attribute(unit=message.unit)


def attributes_to_wire(attributes: Mapping[str, Attribute]) -> dict[str, Any]:
    """A map of attributes → wire."""
    return {name: attribute_to_wire(value) for name, value in attributes.items()}


def attributes_from_wire(attributes: Mapping[str, Any]) -> dict[str, Attribute]:
    """A wire map of attributes → domain."""
    return {name: attribute_from_wire(value) for name, value in attributes.items()}


# --- statistics -------------------------------------------------------------------------------------------------


def stat_value_to_wire(value: StatValue) -> Any:
    """``StatValue`` → wire; ``None`` fields stay unset (the wire uses wrapper types for them)."""
    return wire_structs.StatValue(
        float_numerator_val=value.float_numerator_val,
        float_denominator_val=value.float_denominator_val,
        int_numerator_val=value.int_numerator_val,
        int_denominator_val=value.int_denominator_val,
        string_val=value.string_val,
        bool_val=value.bool_val,
        unit=value.unit,
        desc=value.desc,
    )


def stat_value_from_wire(message: Any) -> StatValue:
    """Wire ``StatValue`` → domain; an unset wrapper becomes ``None``, a set zero stays zero."""
    return StatValue(
        float_numerator_val=message.float_numerator_val,
        float_denominator_val=message.float_denominator_val,
        int_numerator_val=message.int_numerator_val,
        int_denominator_val=message.int_denominator_val,
        string_val=message.string_val,
        bool_val=message.bool_val,
        unit=message.unit,
        desc=message.desc,
    )


def stat_object_to_wire(obj: StatObject) -> Any:
    """``StatObject`` tree → wire."""
    return wire_structs.StatObject(
        nested={name: stat_object_to_wire(child) for name, child in obj.nested.items()},
        attributes={name: stat_value_to_wire(value) for name, value in obj.attributes.items()},
    )


def stat_object_from_wire(message: Any) -> StatObject:
    """Wire ``StatObject`` tree → domain."""
    return StatObject(
        nested={name: stat_object_from_wire(child) for name, child in message.nested.items()},
        attributes={name: stat_value_from_wire(value) for name, value in message.attributes.items()},
    )
