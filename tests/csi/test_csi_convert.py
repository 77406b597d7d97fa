"""CSI wire ⇄ domain converters: every shape of field (enum, oneof, wrapper, map, repeated, timestamp) both ways,
spec violations reported with the field's path, and an RPC table that matches the generated services."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import betterproto
import pytest
from pydantic import BaseModel, ValidationError

from plugin_host._proto.csi import v1 as wire
from plugin_host.csi import api
from plugin_host.csi import requests as req
from plugin_host.csi._convert import data_from_wire, describe_validation_error, from_wire, to_wire
from plugin_host.csi._rpcs import RPCS
from plugin_host.csi.server import rpc_method_name

MOUNT_RW = api.VolumeCapability(
    mount=api.VolumeCapabilityMountVolume(fs_type="ext4", mount_flags=("noatime",)),
    access_mode=api.VolumeCapabilityAccessMode(mode=api.VolumeCapabilityAccessModeMode.SINGLE_NODE_WRITER),
)
BLOCK_RO = api.VolumeCapability(
    block=api.VolumeCapabilityBlockVolume(),
    access_mode=api.VolumeCapabilityAccessMode(mode=api.VolumeCapabilityAccessModeMode.MULTI_NODE_READER_ONLY),
)
WHEN = datetime(2024, 5, 17, 12, 30, 1, tzinfo=UTC)

# (domain model, wire type): each must survive domain → wire → bytes → wire → domain unchanged.
ROUND_TRIPS: list[tuple[BaseModel, type[Any]]] = [
    (api.GetPluginInfoResponse(name="a.b", vendor_version="1", manifest={"k": "v"}), wire.GetPluginInfoResponse),
    (
        api.GetPluginCapabilitiesResponse(
            capabilities=(
                api.PluginCapability(
                    service=api.PluginCapabilityService(type=api.PluginCapabilityServiceType.CONTROLLER_SERVICE)
                ),
                api.PluginCapability(
                    volume_expansion=api.PluginCapabilityVolumeExpansion(
                        type=api.PluginCapabilityVolumeExpansionType.ONLINE
                    )
                ),
                api.PluginCapability(),
            )
        ),
        wire.GetPluginCapabilitiesResponse,
    ),
    (api.ProbeResponse(ready=None), wire.ProbeResponse),
    (api.ProbeResponse(ready=False), wire.ProbeResponse),
    (api.ProbeResponse(ready=True), wire.ProbeResponse),
    (MOUNT_RW, wire.VolumeCapability),
    (BLOCK_RO, wire.VolumeCapability),
    (
        req.CreateVolumeRequest(
            name="v",
            capacity_range=api.CapacityRange(required_bytes=1, limit_bytes=2),
            volume_capabilities=(MOUNT_RW, BLOCK_RO),
            parameters={"p": "1"},
            secrets={"password": "hunter2"},  # validated into Secrets
            volume_content_source=api.VolumeContentSource(
                snapshot=api.VolumeContentSourceSnapshotSource(snapshot_id="s1")
            ),
            accessibility_requirements=api.TopologyRequirement(
                requisite=(api.Topology(segments={"zone": "a"}),), preferred=(api.Topology(),)
            ),
            mutable_parameters={"iops": "10"},
        ),
        wire.CreateVolumeRequest,
    ),
    (
        api.CreateVolumeResponse(
            volume=api.Volume(
                volume_id="vol-1",
                capacity_bytes=10,
                volume_context={"a": "b"},
                content_source=api.VolumeContentSource(volume=api.VolumeContentSourceVolumeSource(volume_id="v0")),
                accessible_topology=(api.Topology(segments={"rack": "r1"}),),
            )
        ),
        wire.CreateVolumeResponse,
    ),
    (
        api.GetCapacityResponse(available_capacity=5, maximum_volume_size=0, minimum_volume_size=None),
        wire.GetCapacityResponse,
    ),
    (
        api.ListSnapshotsResponse(
            entries=(
                api.ListSnapshotsResponseEntry(
                    snapshot=api.Snapshot(
                        snapshot_id="s", source_volume_id="v", creation_time=WHEN, ready_to_use=True, size_bytes=3
                    )
                ),
            ),
            next_token="7",
        ),
        wire.ListSnapshotsResponse,
    ),
    (
        api.ListVolumesResponse(
            entries=(
                api.ListVolumesResponseEntry(
                    volume=api.Volume(volume_id="v"),
                    status=api.ListVolumesResponseVolumeStatus(
                        published_node_ids=("n1", "n2"),
                        volume_condition=api.VolumeCondition(abnormal=True, message="x"),
                    ),
                ),
            )
        ),
        wire.ListVolumesResponse,
    ),
    (
        api.NodeGetVolumeStatsResponse(
            usage=(api.VolumeUsage(total=10, used=4, available=6, unit=api.VolumeUsageUnit.INODES),)
        ),
        wire.NodeGetVolumeStatsResponse,
    ),
    (api.NodeGetInfoResponse(node_id="n", max_volumes_per_node=3), wire.NodeGetInfoResponse),
    (
        api.GetMetadataDeltaResponse(
            block_metadata_type=api.BlockMetadataType.FIXED_LENGTH,
            volume_capacity_bytes=100,
            block_metadata=(api.BlockMetadata(byte_offset=0, size_bytes=10),),
        ),
        wire.GetMetadataDeltaResponse,
    ),
]


@pytest.mark.parametrize(("model", "wire_type"), ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip_through_bytes_is_lossless(model: BaseModel, wire_type: type[Any]) -> None:
    """A model converted to wire bytes and back is equal to itself (oneofs, wrappers, maps, timestamps included)."""
    data = bytes(to_wire(model, wire_type))
    assert from_wire(wire_type().parse(data), type(model)) == model


def test_plain_dicts_and_enum_names_are_accepted_as_input() -> None:
    """A dict of the message's shape with enum names validates into the same model as explicit construction."""
    parsed = api.VolumeCapability.model_validate(
        {"mount": {"fs_type": "ext4", "mount_flags": ["noatime"]}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}
    )
    assert parsed == MOUNT_RW


def test_enums_travel_by_number_on_the_wire() -> None:
    """The domain's enum names become the spec's numbers on the wire."""
    message = to_wire(BLOCK_RO, wire.VolumeCapability)
    assert message.access_mode.mode == 3  # MULTI_NODE_READER_ONLY
    assert betterproto.which_one_of(message, "access_type")[0] == "block"


def test_unknown_enum_number_from_a_newer_plugin_reads_as_unknown() -> None:
    """An enum value this version does not know becomes UNKNOWN instead of failing the reply."""
    raw = bytes(wire.ControllerServiceCapability(rpc=wire.ControllerServiceCapabilityRpc(type=99)))
    parsed = from_wire(wire.ControllerServiceCapability().parse(raw), api.ControllerServiceCapability)
    assert parsed.rpc == api.ControllerServiceCapabilityRpc(type=api.ControllerServiceCapabilityRpcType.UNKNOWN)


def test_absent_message_field_is_none_and_present_empty_message_is_kept() -> None:
    """An unset message field reads as None; an empty message that was sent (block {}) reads as present."""
    assert data_from_wire(wire.NodeGetInfoResponse(node_id="n")) == {"node_id": "n", "max_volumes_per_node": 0}
    parsed = wire.VolumeCapability().parse(bytes(to_wire(BLOCK_RO, wire.VolumeCapability)))
    assert data_from_wire(parsed)["block"] == {}


def test_secrets_become_a_plain_map_on_the_wire() -> None:
    """Secrets carry their real values to the plugin (redaction is for humans, not the wire)."""
    request = req.DeleteVolumeRequest.model_validate({"volume_id": "v", "secrets": {"token": "s3cr3t"}})
    assert to_wire(request, wire.DeleteVolumeRequest).secrets == {"token": "s3cr3t"}


@pytest.mark.parametrize(
    ("model", "data", "expected"),
    [
        (api.GetPluginInfoResponse, {"vendor_version": "1"}, ["field 'name' is missing, expected it to be set"]),
        (
            api.GetPluginInfoResponse,
            {"name": "", "vendor_version": ""},
            [
                "field 'name' is empty, expected a non-empty string",
                "field 'vendor_version' is empty, expected a non-empty string",
            ],
        ),
        (
            api.ListVolumesResponse,
            {"entries": [{"volume": {"volume_id": "a"}}, {"volume": {"volume_id": ""}}]},
            ["field 'entries[1].volume.volume_id' is empty, expected a non-empty string"],
        ),
        (api.CreateVolumeResponse, {}, ["field 'volume' is missing, expected it to be set"]),
        (
            api.VolumeCapability,
            {"access_mode": {}},
            ["oneof 'access_type' needs exactly one of block, mount set"],
        ),
        (
            api.NodeGetVolumeStatsResponse,
            {"usage": [{"total": 1, "unit": "UNKNOWN"}]},
            ["field 'usage[0]' unit is UNKNOWN, expected BYTES or INODES"],
        ),
        (
            api.NodeGetInfoResponse,
            {"node_id": "n", "max_volumes_per_node": -1},
            ["field 'max_volumes_per_node' is negative, expected a value >= 0"],
        ),
    ],
)
def test_spec_violations_name_the_field_path(model: type[BaseModel], data: dict[str, Any], expected: list[str]) -> None:
    """Validation problems are described with the full path of the field and what the spec expects."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert describe_validation_error(caught.value) == expected


def test_rpc_table_matches_the_generated_services() -> None:
    """Every method of every generated CSI stub is in the RPC table with the same gRPC path and types."""
    generated: dict[str, str] = {}
    for name, stub in inspect.getmembers(wire, inspect.isclass):
        if not name.endswith("Stub"):
            continue
        service = name.removesuffix("Stub")
        for method in vars(stub):
            if not method.startswith("_"):
                generated[method] = f"/csi.v1.{service}/"
    assert sorted(generated) == sorted(rpc_method_name(name) for name in RPCS)
    for name, rpc in RPCS.items():
        assert rpc.path == generated[rpc_method_name(name)] + name
        assert rpc.wire_request.__name__ == rpc.request.__name__ == f"{name}Request"
        assert rpc.wire_reply.__name__ == rpc.reply.__name__ == f"{name}Response"


def test_every_domain_model_has_exactly_the_wire_fields() -> None:
    """Each request and response model declares the same fields as its wire message, so nothing is dropped."""
    for rpc in RPCS.values():
        for model, wire_type in ((rpc.request, rpc.wire_request), (rpc.reply, rpc.wire_reply)):
            wire_fields = set(wire_type._betterproto.meta_by_field_name)
            assert set(model.model_fields) == wire_fields, model.__name__
