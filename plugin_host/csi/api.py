"""CSI v1.12 as frozen pydantic models: the enums, the shared messages and every response.

Names follow the CSI messages; a nested message is named by its path (``VolumeCapability.AccessMode`` is
:class:`VolumeCapabilityAccessMode`). Enums are ``StrEnum`` members named as in the spec, so plain strings work
(``{"mode": "SINGLE_NODE_WRITER"}``). Repeated fields are tuples, maps are dicts, a message field that may be unset
is ``X | None``, and a oneof is a group of such fields of which at most one (exactly one where the spec requires
it) is set.

Fields the spec calls REQUIRED are required here too (a non-empty string, a set message, a non-empty list), so a
reply that breaks the spec fails validation, and :class:`~plugin_host.csi.CsiClient` reports it as a
:class:`~plugin_host.errors.PluginProtocolError` naming the RPC and the field. Request models live in
:mod:`plugin_host.csi.requests`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugin_host.csi._enums import (
    BlockMetadataType,
    ControllerServiceCapabilityRpcType,
    GroupControllerServiceCapabilityRpcType,
    NodeServiceCapabilityRpcType,
    PluginCapabilityServiceType,
    PluginCapabilityVolumeExpansionType,
    VolumeCapabilityAccessModeMode,
    VolumeUsageUnit,
)

if TYPE_CHECKING:
    # requests imports this module (its models use ours): the Protocol below names them in annotations only.
    from plugin_host.csi.requests import GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest

__all__ = [
    "BlockMetadata",
    "BlockMetadataType",
    "CapacityRange",
    "ControllerExpandVolumeResponse",
    "ControllerGetCapabilitiesResponse",
    "ControllerGetVolumeResponse",
    "ControllerGetVolumeResponseVolumeStatus",
    "ControllerModifyVolumeResponse",
    "ControllerPublishVolumeResponse",
    "ControllerServiceCapability",
    "ControllerServiceCapabilityRpc",
    "ControllerServiceCapabilityRpcType",
    "ControllerUnpublishVolumeResponse",
    "CreateSnapshotResponse",
    "CreateVolumeGroupSnapshotResponse",
    "CreateVolumeResponse",
    "CsiModel",
    "CsiPlugin",
    "DeleteSnapshotResponse",
    "DeleteVolumeGroupSnapshotResponse",
    "DeleteVolumeResponse",
    "GetCapacityResponse",
    "GetMetadataAllocatedResponse",
    "GetMetadataDeltaResponse",
    "GetPluginCapabilitiesResponse",
    "GetPluginInfoResponse",
    "GetSnapshotResponse",
    "GetVolumeGroupSnapshotResponse",
    "GroupControllerGetCapabilitiesResponse",
    "GroupControllerServiceCapability",
    "GroupControllerServiceCapabilityRpc",
    "GroupControllerServiceCapabilityRpcType",
    "ListSnapshotsResponse",
    "ListSnapshotsResponseEntry",
    "ListVolumesResponse",
    "ListVolumesResponseEntry",
    "ListVolumesResponseVolumeStatus",
    "NodeExpandVolumeResponse",
    "NodeGetCapabilitiesResponse",
    "NodeGetInfoResponse",
    "NodeGetVolumeStatsResponse",
    "NodePublishVolumeResponse",
    "NodeServiceCapability",
    "NodeServiceCapabilityRpc",
    "NodeServiceCapabilityRpcType",
    "NodeStageVolumeResponse",
    "NodeUnpublishVolumeResponse",
    "NodeUnstageVolumeResponse",
    "PluginCapability",
    "PluginCapabilityService",
    "PluginCapabilityServiceType",
    "PluginCapabilityVolumeExpansion",
    "PluginCapabilityVolumeExpansionType",
    "ProbeResponse",
    "Snapshot",
    "Topology",
    "TopologyRequirement",
    "ValidateVolumeCapabilitiesResponse",
    "ValidateVolumeCapabilitiesResponseConfirmed",
    "Volume",
    "VolumeCapability",
    "VolumeCapabilityAccessMode",
    "VolumeCapabilityAccessModeMode",
    "VolumeCapabilityBlockVolume",
    "VolumeCapabilityMountVolume",
    "VolumeCondition",
    "VolumeContentSource",
    "VolumeContentSourceSnapshotSource",
    "VolumeContentSourceVolumeSource",
    "VolumeGroupSnapshot",
    "VolumeUsage",
    "VolumeUsageUnit",
]


class CsiModel(BaseModel):
    """Base of every CSI model: frozen, no unknown fields, and validation errors never echo the input (secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# A field the spec calls REQUIRED: a string that must not be empty.
NonEmpty = Annotated[str, Field(min_length=1)]
# Sizes and counts: the spec forbids negative values.
NonNegative = Annotated[int, Field(ge=0)]


def _count_set(model: BaseModel, fields: tuple[str, ...]) -> int:
    return sum(getattr(model, name) is not None for name in fields)


def _at_most_one(model: BaseModel, oneof: str, fields: tuple[str, ...]) -> None:
    if _count_set(model, fields) > 1:
        raise ValueError(f"oneof '{oneof}' has more than one of {', '.join(fields)} set, expected at most one")


def _exactly_one(model: BaseModel, oneof: str, fields: tuple[str, ...]) -> None:
    if _count_set(model, fields) != 1:
        raise ValueError(f"oneof '{oneof}' needs exactly one of {', '.join(fields)} set")


# --- capabilities --------------------------------------------------------------------------------------------------


class PluginCapabilityService(CsiModel):
    """A service the plugin offers."""

    type: PluginCapabilityServiceType = PluginCapabilityServiceType.UNKNOWN


class PluginCapabilityVolumeExpansion(CsiModel):
    """How the plugin's volumes can be expanded."""

    type: PluginCapabilityVolumeExpansionType = PluginCapabilityVolumeExpansionType.UNKNOWN


class PluginCapability(CsiModel):
    """One capability of the plugin as a whole (oneof ``type``: ``service`` or ``volume_expansion``)."""

    service: PluginCapabilityService | None = None
    volume_expansion: PluginCapabilityVolumeExpansion | None = None

    @model_validator(mode="after")
    def _oneof(self) -> PluginCapability:
        _at_most_one(self, "type", ("service", "volume_expansion"))
        return self


class ControllerServiceCapabilityRpc(CsiModel):
    """An optional Controller RPC the plugin implements."""

    type: ControllerServiceCapabilityRpcType = ControllerServiceCapabilityRpcType.UNKNOWN


class ControllerServiceCapability(CsiModel):
    """One Controller capability (oneof ``type``: ``rpc``)."""

    rpc: ControllerServiceCapabilityRpc | None = None


class NodeServiceCapabilityRpc(CsiModel):
    """An optional Node RPC the plugin implements."""

    type: NodeServiceCapabilityRpcType = NodeServiceCapabilityRpcType.UNKNOWN


class NodeServiceCapability(CsiModel):
    """One Node capability (oneof ``type``: ``rpc``)."""

    rpc: NodeServiceCapabilityRpc | None = None


class GroupControllerServiceCapabilityRpc(CsiModel):
    """An optional GroupController RPC the plugin implements."""

    type: GroupControllerServiceCapabilityRpcType = GroupControllerServiceCapabilityRpcType.UNKNOWN


class GroupControllerServiceCapability(CsiModel):
    """One GroupController capability (oneof ``type``: ``rpc``)."""

    rpc: GroupControllerServiceCapabilityRpc | None = None


# --- volumes -------------------------------------------------------------------------------------------------------


class VolumeCapabilityBlockVolume(CsiModel):
    """Raw block access."""


class VolumeCapabilityMountVolume(CsiModel):
    """Filesystem access."""

    fs_type: str = ""
    mount_flags: tuple[str, ...] = ()
    volume_mount_group: str = ""


class VolumeCapabilityAccessMode(CsiModel):
    """Who may use the volume, and how."""

    mode: VolumeCapabilityAccessModeMode = VolumeCapabilityAccessModeMode.UNKNOWN


class VolumeCapability(CsiModel):
    """How a volume is used: exactly one of ``block`` or ``mount`` (oneof ``access_type``), and an access mode."""

    block: VolumeCapabilityBlockVolume | None = None
    mount: VolumeCapabilityMountVolume | None = None
    access_mode: VolumeCapabilityAccessMode

    @model_validator(mode="after")
    def _oneof(self) -> VolumeCapability:
        _exactly_one(self, "access_type", ("block", "mount"))
        return self


class CapacityRange(CsiModel):
    """Size bounds in bytes; 0 leaves that side open."""

    required_bytes: NonNegative = 0
    limit_bytes: NonNegative = 0


class Topology(CsiModel):
    """A location in the cluster, as segments (``{"zone": "a"}``)."""

    segments: dict[str, str] = {}


class TopologyRequirement(CsiModel):
    """Where a new volume must (``requisite``) and should, in order (``preferred``), be reachable from."""

    requisite: tuple[Topology, ...] = ()
    preferred: tuple[Topology, ...] = ()


class VolumeContentSourceSnapshotSource(CsiModel):
    """Create from this snapshot."""

    snapshot_id: NonEmpty


class VolumeContentSourceVolumeSource(CsiModel):
    """Clone this volume."""

    volume_id: NonEmpty


class VolumeContentSource(CsiModel):
    """Initial contents of a volume: exactly one of ``snapshot`` or ``volume`` (oneof ``type``)."""

    snapshot: VolumeContentSourceSnapshotSource | None = None
    volume: VolumeContentSourceVolumeSource | None = None

    @model_validator(mode="after")
    def _oneof(self) -> VolumeContentSource:
        _exactly_one(self, "type", ("snapshot", "volume"))
        return self


class Volume(CsiModel):
    """A provisioned volume; ``volume_id`` is REQUIRED."""

    capacity_bytes: NonNegative = 0
    volume_id: NonEmpty
    volume_context: dict[str, str] = {}
    content_source: VolumeContentSource | None = None
    accessible_topology: tuple[Topology, ...] = ()


class VolumeCondition(CsiModel):
    """Whether a volume is healthy, with a description."""

    abnormal: bool = False
    message: str = ""


class VolumeUsage(CsiModel):
    """Usage of a volume in one unit (REQUIRED: not ``UNKNOWN``)."""

    available: NonNegative = 0
    total: NonNegative = 0
    used: NonNegative = 0
    unit: VolumeUsageUnit

    @model_validator(mode="after")
    def _unit_known(self) -> VolumeUsage:
        if self.unit is VolumeUsageUnit.UNKNOWN:
            raise ValueError("unit is UNKNOWN, expected BYTES or INODES")
        return self


# --- snapshots -----------------------------------------------------------------------------------------------------


class Snapshot(CsiModel):
    """A snapshot of a volume; ``snapshot_id`` and ``source_volume_id`` are REQUIRED."""

    size_bytes: NonNegative = 0
    snapshot_id: NonEmpty
    source_volume_id: NonEmpty
    creation_time: datetime | None = None
    ready_to_use: bool = False
    group_snapshot_id: str = ""


class VolumeGroupSnapshot(CsiModel):
    """Snapshots of several volumes taken together."""

    group_snapshot_id: NonEmpty
    snapshots: Annotated[tuple[Snapshot, ...], Field(min_length=1)]
    creation_time: datetime | None = None
    ready_to_use: bool = False


class BlockMetadata(CsiModel):
    """A byte range of a snapshot."""

    byte_offset: NonNegative = 0
    size_bytes: NonNegative = 0


# --- responses: Identity -------------------------------------------------------------------------------------------


class GetPluginInfoResponse(CsiModel):
    """The plugin's name (REQUIRED) and version (REQUIRED), and an optional manifest."""

    name: NonEmpty
    vendor_version: NonEmpty
    manifest: dict[str, str] = {}


class GetPluginCapabilitiesResponse(CsiModel):
    """What the plugin supports as a whole."""

    capabilities: tuple[PluginCapability, ...] = ()


class ProbeResponse(CsiModel):
    """Readiness; ``None`` means the plugin did not say."""

    ready: bool | None = None


# --- responses: Controller -----------------------------------------------------------------------------------------


class CreateVolumeResponse(CsiModel):
    """The created volume (REQUIRED)."""

    volume: Volume


class DeleteVolumeResponse(CsiModel):
    """Empty."""


class ControllerPublishVolumeResponse(CsiModel):
    """Opaque context for the node's stage and publish calls."""

    publish_context: dict[str, str] = {}


class ControllerUnpublishVolumeResponse(CsiModel):
    """Empty."""


class ValidateVolumeCapabilitiesResponseConfirmed(CsiModel):
    """What the plugin confirmed; ``volume_capabilities`` is REQUIRED."""

    volume_context: dict[str, str] = {}
    volume_capabilities: Annotated[tuple[VolumeCapability, ...], Field(min_length=1)]
    parameters: dict[str, str] = {}
    mutable_parameters: dict[str, str] = {}


class ValidateVolumeCapabilitiesResponse(CsiModel):
    """``confirmed`` is set only when everything asked for is supported; ``message`` may say why not."""

    confirmed: ValidateVolumeCapabilitiesResponseConfirmed | None = None
    message: str = ""


class ListVolumesResponseVolumeStatus(CsiModel):
    """Where a listed volume is published, and its condition."""

    published_node_ids: tuple[str, ...] = ()
    volume_condition: VolumeCondition | None = None


class ListVolumesResponseEntry(CsiModel):
    """One listed volume (REQUIRED) and its status."""

    volume: Volume
    status: ListVolumesResponseVolumeStatus | None = None


class ListVolumesResponse(CsiModel):
    """One page of volumes; ``next_token`` is empty on the last page."""

    entries: tuple[ListVolumesResponseEntry, ...] = ()
    next_token: str = ""


class ControllerGetVolumeResponseVolumeStatus(CsiModel):
    """Where the volume is published, and its condition."""

    published_node_ids: tuple[str, ...] = ()
    volume_condition: VolumeCondition | None = None


class ControllerGetVolumeResponse(CsiModel):
    """One volume (REQUIRED) and its status (REQUIRED)."""

    volume: Volume
    status: ControllerGetVolumeResponseVolumeStatus


class ControllerModifyVolumeResponse(CsiModel):
    """Empty."""


class GetCapacityResponse(CsiModel):
    """Available capacity in bytes, and the volume size bounds when the plugin reports them."""

    available_capacity: NonNegative = 0
    maximum_volume_size: NonNegative | None = None
    minimum_volume_size: NonNegative | None = None


class ControllerGetCapabilitiesResponse(CsiModel):
    """The optional Controller RPCs the plugin implements."""

    capabilities: tuple[ControllerServiceCapability, ...] = ()


class CreateSnapshotResponse(CsiModel):
    """The created snapshot (REQUIRED)."""

    snapshot: Snapshot


class DeleteSnapshotResponse(CsiModel):
    """Empty."""


class ListSnapshotsResponseEntry(CsiModel):
    """One listed snapshot."""

    snapshot: Snapshot


class ListSnapshotsResponse(CsiModel):
    """One page of snapshots; ``next_token`` is empty on the last page."""

    entries: tuple[ListSnapshotsResponseEntry, ...] = ()
    next_token: str = ""


class GetSnapshotResponse(CsiModel):
    """One snapshot (REQUIRED)."""

    snapshot: Snapshot


class ControllerExpandVolumeResponse(CsiModel):
    """The volume's new size, and whether NodeExpandVolume must follow."""

    capacity_bytes: NonNegative = 0
    node_expansion_required: bool = False


# --- responses: Node -----------------------------------------------------------------------------------------------


class NodeStageVolumeResponse(CsiModel):
    """Empty."""


class NodeUnstageVolumeResponse(CsiModel):
    """Empty."""


class NodePublishVolumeResponse(CsiModel):
    """Empty."""


class NodeUnpublishVolumeResponse(CsiModel):
    """Empty."""


class NodeGetVolumeStatsResponse(CsiModel):
    """Usage of a published volume per unit, and its condition."""

    usage: tuple[VolumeUsage, ...] = ()
    volume_condition: VolumeCondition | None = None


class NodeExpandVolumeResponse(CsiModel):
    """The volume's new size."""

    capacity_bytes: NonNegative = 0


class NodeGetCapabilitiesResponse(CsiModel):
    """The optional Node RPCs the plugin implements."""

    capabilities: tuple[NodeServiceCapability, ...] = ()


class NodeGetInfoResponse(CsiModel):
    """The node's id for this plugin (REQUIRED), its volume limit (0: none given) and its topology."""

    node_id: NonEmpty
    max_volumes_per_node: NonNegative = 0
    accessible_topology: Topology | None = None


# --- responses: GroupController and SnapshotMetadata ---------------------------------------------------------------


class GroupControllerGetCapabilitiesResponse(CsiModel):
    """The optional GroupController RPCs the plugin implements."""

    capabilities: tuple[GroupControllerServiceCapability, ...] = ()


class CreateVolumeGroupSnapshotResponse(CsiModel):
    """The created group snapshot (REQUIRED)."""

    group_snapshot: VolumeGroupSnapshot


class DeleteVolumeGroupSnapshotResponse(CsiModel):
    """Empty."""


class GetVolumeGroupSnapshotResponse(CsiModel):
    """One group snapshot (REQUIRED)."""

    group_snapshot: VolumeGroupSnapshot


class GetMetadataAllocatedResponse(CsiModel):
    """One message of the allocated-blocks stream."""

    block_metadata_type: BlockMetadataType = BlockMetadataType.UNKNOWN
    volume_capacity_bytes: NonNegative = 0
    block_metadata: tuple[BlockMetadata, ...] = ()


class GetMetadataDeltaResponse(CsiModel):
    """One message of the changed-blocks stream."""

    block_metadata_type: BlockMetadataType = BlockMetadataType.UNKNOWN
    volume_capacity_bytes: NonNegative = 0
    block_metadata: tuple[BlockMetadata, ...] = ()


# --- the plugin side ----------------------------------------------------------------------------------------------


@runtime_checkable
class CsiPlugin(Protocol):
    """A CSI plugin as :class:`~plugin_host.csi.server.CsiPluginServer` serves it: at least the Identity service.

    The spec requires every plugin to implement Identity. The other services are optional and found by name: for
    each RPC the plugin implements it has an async method named after it in snake_case, taking the request model of
    :mod:`plugin_host.csi.requests` and returning the response model of this module, e.g.
    ``async def node_get_info(self, request: NodeGetInfoRequest) -> NodeGetInfoResponse``. The server answers
    ``UNIMPLEMENTED`` for RPCs without a method. The reference plugin is
    :class:`plugin_host.plugins.csi_hostpath.HostpathPlugin` (Identity, Controller and Node).
    """

    async def get_plugin_info(self, request: GetPluginInfoRequest) -> GetPluginInfoResponse:
        """The plugin's name (a domain name, as the spec requires) and version."""
        ...

    async def get_plugin_capabilities(self, request: GetPluginCapabilitiesRequest) -> GetPluginCapabilitiesResponse:
        """Which services the plugin offers (controller service, topology constraints, volume expansion)."""
        ...

    async def probe(self, request: ProbeRequest) -> ProbeResponse:
        """Whether the plugin is ready; a ``ready`` left unset means ready."""
        ...
