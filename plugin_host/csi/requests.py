"""CSI v1.12 request messages as frozen pydantic models.

:class:`~plugin_host.csi.CsiClient` builds one from a call's keyword arguments (so a missing REQUIRED field is an
:class:`~plugin_host.errors.InvalidRequestError` before anything is sent), and a plugin written with this package
can parse the wire request into one to get the spec's checks for free. Fields marked ``csi_secret`` in the spec are
:class:`~plugin_host.csi.Secrets`, which never show their values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from plugin_host.csi._secrets import Secrets
from plugin_host.csi.api import (
    CapacityRange,
    CsiModel,
    NonEmpty,
    NonNegative,
    Topology,
    TopologyRequirement,
    VolumeCapability,
    VolumeContentSource,
)

__all__ = [
    "ControllerExpandVolumeRequest",
    "ControllerGetCapabilitiesRequest",
    "ControllerGetVolumeRequest",
    "ControllerModifyVolumeRequest",
    "ControllerPublishVolumeRequest",
    "ControllerUnpublishVolumeRequest",
    "CreateSnapshotRequest",
    "CreateVolumeGroupSnapshotRequest",
    "CreateVolumeRequest",
    "DeleteSnapshotRequest",
    "DeleteVolumeGroupSnapshotRequest",
    "DeleteVolumeRequest",
    "GetCapacityRequest",
    "GetMetadataAllocatedRequest",
    "GetMetadataDeltaRequest",
    "GetPluginCapabilitiesRequest",
    "GetPluginInfoRequest",
    "GetSnapshotRequest",
    "GetVolumeGroupSnapshotRequest",
    "GroupControllerGetCapabilitiesRequest",
    "ListSnapshotsRequest",
    "ListVolumesRequest",
    "NodeExpandVolumeRequest",
    "NodeGetCapabilitiesRequest",
    "NodeGetInfoRequest",
    "NodeGetVolumeStatsRequest",
    "NodePublishVolumeRequest",
    "NodeStageVolumeRequest",
    "NodeUnpublishVolumeRequest",
    "NodeUnstageVolumeRequest",
    "ProbeRequest",
    "ValidateVolumeCapabilitiesRequest",
]

_Capabilities = Annotated[tuple[VolumeCapability, ...], Field(min_length=1)]
_Ids = Annotated[tuple[NonEmpty, ...], Field(min_length=1)]


# --- Identity ------------------------------------------------------------------------------------------------------


class GetPluginInfoRequest(CsiModel):
    """Empty."""


class GetPluginCapabilitiesRequest(CsiModel):
    """Empty."""


class ProbeRequest(CsiModel):
    """Empty."""


# --- Controller ----------------------------------------------------------------------------------------------------


class CreateVolumeRequest(CsiModel):
    """Provision a volume named ``name`` (the idempotency key) usable in every one of ``volume_capabilities``."""

    name: NonEmpty
    capacity_range: CapacityRange | None = None
    volume_capabilities: _Capabilities
    parameters: dict[str, str] = {}
    secrets: Secrets = Secrets()
    volume_content_source: VolumeContentSource | None = None
    accessibility_requirements: TopologyRequirement | None = None
    mutable_parameters: dict[str, str] = {}


class DeleteVolumeRequest(CsiModel):
    """Delete a volume."""

    volume_id: NonEmpty
    secrets: Secrets = Secrets()


class ControllerPublishVolumeRequest(CsiModel):
    """Make a volume available on a node."""

    volume_id: NonEmpty
    node_id: NonEmpty
    volume_capability: VolumeCapability
    readonly: bool = False
    secrets: Secrets = Secrets()
    volume_context: dict[str, str] = {}


class ControllerUnpublishVolumeRequest(CsiModel):
    """Undo ControllerPublishVolume; an empty ``node_id`` means every node."""

    volume_id: NonEmpty
    node_id: str = ""
    secrets: Secrets = Secrets()


class ValidateVolumeCapabilitiesRequest(CsiModel):
    """Ask whether a volume supports the given capabilities."""

    volume_id: NonEmpty
    volume_context: dict[str, str] = {}
    volume_capabilities: _Capabilities
    parameters: dict[str, str] = {}
    secrets: Secrets = Secrets()
    mutable_parameters: dict[str, str] = {}


class ListVolumesRequest(CsiModel):
    """One page of volumes: at most ``max_entries`` (0: the plugin chooses) from ``starting_token``."""

    max_entries: NonNegative = 0
    starting_token: str = ""


class ControllerGetVolumeRequest(CsiModel):
    """One volume's current state."""

    volume_id: NonEmpty


class ControllerModifyVolumeRequest(CsiModel):
    """Change a volume's mutable parameters."""

    volume_id: NonEmpty
    secrets: Secrets = Secrets()
    mutable_parameters: Annotated[dict[str, str], Field(min_length=1)]


class GetCapacityRequest(CsiModel):
    """Capacity available for volumes with these capabilities, parameters and topology."""

    volume_capabilities: tuple[VolumeCapability, ...] = ()
    parameters: dict[str, str] = {}
    accessible_topology: Topology | None = None


class ControllerGetCapabilitiesRequest(CsiModel):
    """Empty."""


class CreateSnapshotRequest(CsiModel):
    """Snapshot a volume under ``name`` (the idempotency key)."""

    source_volume_id: NonEmpty
    name: NonEmpty
    secrets: Secrets = Secrets()
    parameters: dict[str, str] = {}


class DeleteSnapshotRequest(CsiModel):
    """Delete a snapshot."""

    snapshot_id: NonEmpty
    secrets: Secrets = Secrets()


class ListSnapshotsRequest(CsiModel):
    """One page of snapshots, optionally only of one volume or only one snapshot."""

    max_entries: NonNegative = 0
    starting_token: str = ""
    source_volume_id: str = ""
    snapshot_id: str = ""
    secrets: Secrets = Secrets()


class GetSnapshotRequest(CsiModel):
    """One snapshot's current state."""

    snapshot_id: NonEmpty
    secrets: Secrets = Secrets()


class ControllerExpandVolumeRequest(CsiModel):
    """Grow a volume."""

    volume_id: NonEmpty
    capacity_range: CapacityRange
    secrets: Secrets = Secrets()
    volume_capability: VolumeCapability | None = None


# --- Node ----------------------------------------------------------------------------------------------------------


class NodeStageVolumeRequest(CsiModel):
    """Prepare a volume on this node at ``staging_target_path``."""

    volume_id: NonEmpty
    publish_context: dict[str, str] = {}
    staging_target_path: NonEmpty
    volume_capability: VolumeCapability
    secrets: Secrets = Secrets()
    volume_context: dict[str, str] = {}


class NodeUnstageVolumeRequest(CsiModel):
    """Undo NodeStageVolume."""

    volume_id: NonEmpty
    staging_target_path: NonEmpty


class NodePublishVolumeRequest(CsiModel):
    """Make a volume available at ``target_path`` on this node."""

    volume_id: NonEmpty
    publish_context: dict[str, str] = {}
    staging_target_path: str = ""
    target_path: NonEmpty
    volume_capability: VolumeCapability
    readonly: bool = False
    secrets: Secrets = Secrets()
    volume_context: dict[str, str] = {}


class NodeUnpublishVolumeRequest(CsiModel):
    """Undo NodePublishVolume."""

    volume_id: NonEmpty
    target_path: NonEmpty


class NodeGetVolumeStatsRequest(CsiModel):
    """Usage of a volume published at ``volume_path``."""

    volume_id: NonEmpty
    volume_path: NonEmpty
    staging_target_path: str = ""


class NodeExpandVolumeRequest(CsiModel):
    """Grow a volume's filesystem on this node."""

    volume_id: NonEmpty
    volume_path: NonEmpty
    capacity_range: CapacityRange | None = None
    staging_target_path: str = ""
    volume_capability: VolumeCapability | None = None
    secrets: Secrets = Secrets()


class NodeGetCapabilitiesRequest(CsiModel):
    """Empty."""


class NodeGetInfoRequest(CsiModel):
    """Empty."""


# --- GroupController and SnapshotMetadata --------------------------------------------------------------------------


class GroupControllerGetCapabilitiesRequest(CsiModel):
    """Empty."""


class CreateVolumeGroupSnapshotRequest(CsiModel):
    """Snapshot several volumes together under ``name`` (the idempotency key)."""

    name: NonEmpty
    source_volume_ids: _Ids
    secrets: Secrets = Secrets()
    parameters: dict[str, str] = {}


class DeleteVolumeGroupSnapshotRequest(CsiModel):
    """Delete a group snapshot and its snapshots."""

    group_snapshot_id: NonEmpty
    snapshot_ids: _Ids
    secrets: Secrets = Secrets()


class GetVolumeGroupSnapshotRequest(CsiModel):
    """One group snapshot's current state."""

    group_snapshot_id: NonEmpty
    snapshot_ids: _Ids
    secrets: Secrets = Secrets()


class GetMetadataAllocatedRequest(CsiModel):
    """Stream the allocated blocks of a snapshot."""

    snapshot_id: NonEmpty
    starting_offset: NonNegative = 0
    max_results: NonNegative = 0
    secrets: Secrets = Secrets()


class GetMetadataDeltaRequest(CsiModel):
    """Stream the blocks that changed between two snapshots."""

    base_snapshot_id: NonEmpty
    target_snapshot_id: NonEmpty
    starting_offset: NonNegative = 0
    max_results: NonNegative = 0
    secrets: Secrets = Secrets()
