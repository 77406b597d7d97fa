"""Wire ⇄ domain converters of the base and device plugin APIs: round trips through real protobuf bytes, Nomad's
field mappings, and golden encodings that pin field numbers to Nomad's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import betterproto
import pytest

from plugin_host._proto.hashicorp.nomad.plugins import device as wire
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host._proto.hashicorp.nomad.plugins.shared import hclspec as wire_hcl
from plugin_host._proto.hashicorp.nomad.plugins.shared import structs as wire_structs
from plugin_host.base import convert as base_convert
from plugin_host.base import hclspec
from plugin_host.base.api import PluginInfoResponse
from plugin_host.base.structs import Attribute, StatObject, StatValue
from plugin_host.device import _convert as convert
from plugin_host.device.api import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceGroupStats,
    DeviceLocality,
    DeviceSpec,
    DeviceStats,
    FingerprintResponse,
    Mount,
    StatsResponse,
)
from plugin_host.errors import PluginProtocolError

T0 = datetime(2026, 8, 1, 12, 30, 15, 250_000, tzinfo=UTC)


def through_bytes(message: Any) -> Any:
    """Serialise and parse again, as the message would cross the wire."""
    return type(message)().parse(bytes(message))


def round_trip(value: Any, to_wire: Callable[[Any], Any], from_wire: Callable[[Any], Any]) -> Any:
    return from_wire(through_bytes(to_wire(value)))


# --- attributes -------------------------------------------------------------------------------------------------

ATTRIBUTES = [
    pytest.param(Attribute(int_val=42, unit="MiB"), id="int"),
    pytest.param(Attribute(int_val=0), id="int-zero"),
    pytest.param(Attribute(float_val=1.5, unit="GHz"), id="float"),
    pytest.param(Attribute(float_val=0.0), id="float-zero"),
    pytest.param(Attribute(string_val="nvidia"), id="string"),
    pytest.param(Attribute(string_val=""), id="string-empty"),
    pytest.param(Attribute(bool_val=True), id="bool"),
    pytest.param(Attribute(bool_val=False), id="bool-false"),
    pytest.param(Attribute(unit="W"), id="unit-only"),
]


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_attribute_round_trips_through_the_oneof(attribute: Attribute) -> None:
    """Each Attribute value kind, zero values included, survives the wire's oneof unchanged."""
    assert round_trip(attribute, base_convert.attribute_to_wire, base_convert.attribute_from_wire) == attribute


@pytest.mark.parametrize(
    ("attribute", "member"),
    [
        (Attribute(int_val=0), "int_val"),
        (Attribute(float_val=2.0), "float_val"),
        (Attribute(string_val="x"), "string_val"),
        (Attribute(bool_val=False), "bool_val"),
        (Attribute(unit="W"), ""),
        # Nomad's ConvertStructsAttribute prefers int, then float, string, bool.
        (Attribute(int_val=1, float_val=2.0, string_val="s", bool_val=True), "int_val"),
        (Attribute(float_val=2.0, string_val="s"), "float_val"),
        (Attribute(string_val="s", bool_val=True), "string_val"),
    ],
)
def test_attribute_sets_the_oneof_member_nomad_would(attribute: Attribute, member: str) -> None:
    """The wire oneof member chosen for an Attribute follows Nomad's precedence."""
    which, _ = betterproto.which_one_of(through_bytes(base_convert.attribute_to_wire(attribute)), "value")
    assert which == member


def test_attribute_golden_bytes() -> None:
    """A false bool attribute is encoded as field 4 with value 0, as Go's proto3 oneof does."""
    assert bytes(base_convert.attribute_to_wire(Attribute(bool_val=False, unit="x"))) == b"\x20\x00\x2a\x01x"


# --- statistics -------------------------------------------------------------------------------------------------

STAT_VALUES = [
    pytest.param(StatValue(), id="empty"),
    pytest.param(StatValue(int_numerator_val=0, int_denominator_val=0), id="int-zeros"),
    pytest.param(StatValue(int_numerator_val=512, int_denominator_val=1024, unit="MiB", desc="memory"), id="ints"),
    pytest.param(StatValue(float_numerator_val=0.0), id="float-zero"),
    pytest.param(StatValue(float_numerator_val=12.5, float_denominator_val=100.0, unit="%"), id="floats"),
    pytest.param(StatValue(string_val=""), id="string-empty"),
    pytest.param(StatValue(bool_val=False), id="bool-false"),
]


@pytest.mark.parametrize("value", STAT_VALUES)
def test_stat_value_keeps_unset_distinct_from_zero(value: StatValue) -> None:
    """StatValue's optional numerics cross the wire as wrappers: None stays None and a set zero stays zero."""
    assert round_trip(value, base_convert.stat_value_to_wire, base_convert.stat_value_from_wire) == value


def test_stat_value_zero_is_encoded_as_a_present_wrapper() -> None:
    """int_numerator_val=0 is an empty Int64Value at field 3 (present), not an absent field."""
    assert bytes(base_convert.stat_value_to_wire(StatValue(int_numerator_val=0))) == b"\x1a\x00"
    assert bytes(base_convert.stat_value_to_wire(StatValue())) == b""


def test_stat_object_tree_round_trips() -> None:
    """A nested StatObject tree survives the wire."""
    tree = StatObject(
        nested={
            "gpu": StatObject(
                attributes={"temp": StatValue(int_numerator_val=60, unit="C")},
                nested={"fan": StatObject(attributes={"speed": StatValue(float_numerator_val=0.5)})},
            )
        },
        attributes={"state": StatValue(string_val="ok")},
    )
    assert round_trip(tree, base_convert.stat_object_to_wire, base_convert.stat_object_from_wire) == tree


# --- hclspec ----------------------------------------------------------------------------------------------------

SPECS = [
    pytest.param(hclspec.obj({}), id="empty-object"),
    pytest.param(hclspec.attr("dir", "string", required=True), id="attr"),
    pytest.param(hclspec.literal('"."'), id="literal"),
    pytest.param(hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')), id="default"),
    pytest.param(hclspec.array([hclspec.attr("a", "string"), hclspec.attr("b", "number")]), id="array"),
    pytest.param(hclspec.block("log", hclspec.obj({"level": hclspec.attr("level", "string")}), True), id="block"),
    pytest.param(hclspec.Block(name="empty"), id="block-without-nested"),
    pytest.param(hclspec.block_attrs("env", "string"), id="block-attrs"),
    pytest.param(hclspec.block_list("f", hclspec.obj({"n": hclspec.attr("n", "number")}), 1, 3), id="block-list"),
    pytest.param(hclspec.block_set("f", hclspec.attr("x", "bool"), 0, 2), id="block-set"),
    pytest.param(hclspec.block_map("port", ["label"], hclspec.obj({})), id="block-map"),
    pytest.param(
        hclspec.obj(
            {
                "dir": hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')),
                "list_period": hclspec.default(hclspec.attr("list_period", "string"), hclspec.literal('"5s"')),
                "nested": hclspec.block("nested", hclspec.obj({"x": hclspec.attr("", "list(number)")})),
            }
        ),
        id="plugin-config",
    ),
]


@pytest.mark.parametrize("spec", SPECS)
def test_hclspec_round_trips(spec: hclspec.Spec) -> None:
    """Every hclspec node kind survives the wire unchanged."""
    assert round_trip(spec, base_convert.spec_to_wire, base_convert.spec_from_wire) == spec


@pytest.mark.parametrize(
    ("spec", "member"),
    [
        (hclspec.attr("a", "string"), "attr"),
        (hclspec.Block(name="b"), "block_value"),
        (hclspec.obj({}), "object"),
        (hclspec.default(hclspec.literal("1"), hclspec.literal("2")), "default"),
    ],
)
def test_hclspec_uses_nomads_oneof_members(spec: hclspec.Spec, member: str) -> None:
    """Attr and Block map onto Nomad's oddly named oneof members (``Attr``, ``block_value``)."""
    which, _ = betterproto.which_one_of(through_bytes(base_convert.spec_to_wire(spec)), "block")
    assert which == member


def test_hclspec_attr_golden_bytes() -> None:
    """An Attr spec is field 3 of Spec, holding name=1, type=2, required=3."""
    encoded = bytes(base_convert.spec_to_wire(hclspec.attr("a", "b", required=True)))
    assert encoded == b"\x1a\x08\x0a\x01a\x12\x01b\x18\x01"


def test_hclspec_node_without_member_is_a_protocol_error() -> None:
    """A wire Spec with no oneof member set is refused with a PluginProtocolError saying what was expected."""
    with pytest.raises(PluginProtocolError, match="no member of its oneof is set, expected exactly one"):
        base_convert.spec_from_wire(wire_hcl.Spec())


def test_hclspec_default_without_fallback_is_a_protocol_error() -> None:
    """A wire Default missing its fallback spec is refused with a PluginProtocolError."""
    message = wire_hcl.Spec(default=wire_hcl.Default(primary=wire_hcl.Spec(literal=wire_hcl.Literal(value="1"))))
    with pytest.raises(PluginProtocolError, match="expected both primary and default"):
        base_convert.spec_from_wire(through_bytes(message))


def test_config_schema_without_spec_is_an_empty_object() -> None:
    """A ConfigSchemaResponse without a spec (a plugin with no config) reads as an empty Object."""
    assert base_convert.config_schema_from_wire(wire_base.ConfigSchemaResponse()) == hclspec.Object()


def test_hclspec_validates_from_plain_dicts() -> None:
    """A Spec tree can be built from dicts thanks to its ``kind`` tags."""
    spec = hclspec.Object.model_validate({"attributes": {"a": {"kind": "attr", "name": "a", "type": "string"}}})
    assert spec == hclspec.obj({"a": hclspec.attr("a", "string")})


# --- plugin info ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ptype", "wire_type"), [("device", 3), ("driver", 2)])
def test_plugin_info_round_trips(ptype: str, wire_type: int) -> None:
    """PluginInfoResponse survives the wire and its type maps to Nomad's PluginType numbers."""
    info = PluginInfoResponse(type=ptype, plugin_api_versions=("v0.1.0",), plugin_version="1.0.0", name="fake")
    message = base_convert.plugin_info_to_wire(info)
    assert int(message.type) == wire_type
    assert round_trip(info, base_convert.plugin_info_to_wire, base_convert.plugin_info_from_wire) == info


def test_plugin_info_with_unknown_type_is_refused() -> None:
    """A plugin type Nomad's wire cannot carry raises PluginProtocolError naming the type and the choices."""
    info = PluginInfoResponse(type="csi", plugin_api_versions=(), plugin_version="1", name="odd")
    with pytest.raises(PluginProtocolError, match=r"unknown plugin type 'csi', expected one of \['device', 'driver'\]"):
        base_convert.plugin_info_to_wire(info)


def test_plugin_info_from_wire_with_unknown_type_is_refused() -> None:
    """A PluginInfoResponse of type UNKNOWN is a protocol error, as in Nomad's client."""
    with pytest.raises(PluginProtocolError, match="unknown plugin type"):
        base_convert.plugin_info_from_wire(wire_base.PluginInfoResponse(name="x"))


# --- fingerprint ------------------------------------------------------------------------------------------------

GROUP = DeviceGroup(
    vendor="example",
    type="file",
    name="mock",
    devices=(
        Device(id="dev-1", healthy=True, hw_locality=DeviceLocality(pci_bus_id="0000:00:1f.6")),
        Device(id="dev-2", healthy=False, health_description="permissions wrong"),
    ),
    attributes={"size": Attribute(int_val=12, unit="B"), "label": Attribute(string_val="x")},
)


def test_device_group_maps_type_and_name_to_nomads_fields() -> None:
    """DeviceGroup.type/name become device_type/device_name and devices become DetectedDevice with id."""
    message = convert.device_group_to_wire(GROUP)
    assert (message.vendor, message.device_type, message.device_name) == ("example", "file", "mock")
    assert [d.id for d in message.devices] == ["dev-1", "dev-2"]
    assert message.devices[0].hw_locality.pci_bus_id == "0000:00:1f.6"


def test_device_group_golden_bytes() -> None:
    """DeviceGroup encodes vendor=1, device_type=2, device_name=3 like Nomad's."""
    assert (
        bytes(convert.device_group_to_wire(DeviceGroup(vendor="v", type="t", name="n"))) == b"\n\x01v\x12\x01t\x1a\x01n"
    )


def test_device_without_locality_has_none_after_the_wire() -> None:
    """A device without hw_locality sends none and reads back as None, not an empty locality."""
    device = Device(id="d", healthy=True)
    assert bytes(convert.device_to_wire(device)) == b"\n\x01d\x10\x01"
    assert round_trip(device, convert.device_to_wire, convert.device_from_wire) == device


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(FingerprintResponse(device_group=GROUP), id="one-group"),
        pytest.param(FingerprintResponse(device_groups=(GROUP, GROUP.model_copy(update={"name": "b"}))), id="two"),
        pytest.param(FingerprintResponse(), id="no-groups"),
    ],
)
def test_fingerprint_response_round_trips(response: FingerprintResponse) -> None:
    """FingerprintResponse with any number of groups survives the wire."""
    assert (
        round_trip(response, convert.fingerprint_response_to_wire, convert.fingerprint_response_from_wire) == response
    )


# --- reserve ----------------------------------------------------------------------------------------------------


def test_container_reservation_round_trips() -> None:
    """ContainerReservation with envs, mounts and device specs survives the wire."""
    reservation = ContainerReservation(
        envs={"DEVICES": "dev-1,dev-2"},
        mounts=(Mount(task_path="/dev/mock", host_path="/srv/mock", read_only=True),),
        devices=(DeviceSpec(task_path="/dev/x", host_path="/dev/y", cgroup_perms="rwm"),),
    )
    assert round_trip(reservation, convert.reserve_response_to_wire, convert.reserve_response_from_wire) == reservation


def test_device_spec_cgroup_perms_is_nomads_permissions_field() -> None:
    """DeviceSpec.cgroup_perms is encoded as ``permissions`` (field 3)."""
    spec = DeviceSpec(task_path="/t", host_path="/h", cgroup_perms="rw")
    assert bytes(convert.device_spec_to_wire(spec)) == b"\n\x02/t\x12\x02/h\x1a\x02rw"


def test_reserve_request_round_trips() -> None:
    """Device ids survive the ReserveRequest in order."""
    ids = ("b", "a", "c")
    assert round_trip(ids, convert.reserve_request_to_wire, convert.reserve_request_from_wire) == ids


def test_empty_reserve_response_is_an_empty_reservation() -> None:
    """A ReserveResponse without container_res reads as an empty reservation."""
    assert convert.reserve_response_from_wire(wire.ReserveResponse()) == ContainerReservation()


# --- stats ------------------------------------------------------------------------------------------------------


def test_device_stats_timestamp_is_a_protobuf_timestamp() -> None:
    """DeviceStats.timestamp is a google.protobuf.Timestamp (seconds, nanos) at field 3."""
    stats = DeviceStats(timestamp=datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=1.5))
    assert bytes(convert.device_stats_to_wire(stats)) == b"\x1a\x08\x08\x01\x10\x80\xca\xb5\xee\x01"


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(T0, id="utc"),
        pytest.param(T0.astimezone(timezone(timedelta(hours=-7))), id="other-zone"),
        pytest.param(datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC), id="before-epoch"),
    ],
)
def test_device_stats_timestamp_keeps_the_instant(moment: datetime) -> None:
    """Timestamps come back as the same instant, timezone-aware in UTC."""
    back = round_trip(DeviceStats(timestamp=moment), convert.device_stats_to_wire, convert.device_stats_from_wire)
    assert back.timestamp == moment
    assert back.timestamp.utcoffset() == timedelta(0)


def test_naive_timestamp_is_local_time() -> None:
    """A naive datetime is read as local time, as datetime.timestamp() does."""
    naive = datetime(2026, 8, 1, 12, 0, 0)
    back = round_trip(DeviceStats(timestamp=naive), convert.device_stats_to_wire, convert.device_stats_from_wire)
    assert back.timestamp == naive.astimezone(UTC)


def test_device_stats_without_summary_or_stats_keep_none() -> None:
    """Absent summary and stats read back as None."""
    stats = DeviceStats(timestamp=T0)
    assert round_trip(stats, convert.device_stats_to_wire, convert.device_stats_from_wire) == stats


def test_stats_response_round_trips() -> None:
    """StatsResponse with groups, instances, summaries and stat trees survives the wire."""
    response = StatsResponse(
        groups=(
            DeviceGroupStats(
                vendor="example",
                type="file",
                name="mock",
                instance_stats={
                    "dev-1": DeviceStats(
                        summary=StatValue(int_numerator_val=10, unit="B", desc="size"),
                        stats=StatObject(attributes={"size": StatValue(int_numerator_val=10)}),
                        timestamp=T0,
                    ),
                    "dev-2": DeviceStats(timestamp=T0 + timedelta(microseconds=1)),
                },
            ),
        )
    )
    assert round_trip(response, convert.stats_response_to_wire, convert.stats_response_from_wire) == response


@pytest.mark.parametrize(("interval", "expected"), [(2.5, 2.5), (0.001, 0.001), (0.0, 1.0)])
def test_stats_interval_crosses_as_a_duration(interval: float, expected: float) -> None:
    """The stats interval is a Duration on the wire; zero means Nomad's default of one second."""
    back = round_trip(interval, convert.stats_request_to_wire, convert.stats_request_from_wire)
    assert back == pytest.approx(expected)


def test_stats_request_without_interval_defaults_to_one_second() -> None:
    """A StatsRequest without collection_interval means one second, as in Nomad's server."""
    assert convert.stats_request_from_wire(wire.StatsRequest().parse(b"")) == 1.0


def test_wire_structs_are_the_shared_package() -> None:
    """Device messages reference the shared structs package, not a copy of it."""
    group = convert.device_group_to_wire(GROUP)
    assert isinstance(group.attributes["size"], wire_structs.Attribute)
