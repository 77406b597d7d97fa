"""CSI (Container Storage Interface v1.12): a client for CSI plugins, speaking pydantic models.

``async with CsiClient(socket_path) as client:`` then one method per CSI RPC (``get_plugin_info``, ``probe``,
``create_volume``, ``node_get_info``, ...). Models are named after the CSI messages; request models are in
:mod:`plugin_host.csi.requests`.
"""

from __future__ import annotations

from plugin_host.csi._dispense import CsiClients as CsiClients
from plugin_host.csi._health import CsiCapabilities as CsiCapabilities
from plugin_host.csi._health import CsiPluginHealth as CsiPluginHealth
from plugin_host.csi._health_subscribers import CsiHealthChanges as CsiHealthChanges
from plugin_host.csi._secrets import Secrets as Secrets
from plugin_host.csi.api import BlockMetadata as BlockMetadata
from plugin_host.csi.api import BlockMetadataType as BlockMetadataType
from plugin_host.csi.api import CapacityRange as CapacityRange
from plugin_host.csi.api import ControllerExpandVolumeResponse as ControllerExpandVolumeResponse
from plugin_host.csi.api import ControllerGetCapabilitiesResponse as ControllerGetCapabilitiesResponse
from plugin_host.csi.api import ControllerGetVolumeResponse as ControllerGetVolumeResponse
from plugin_host.csi.api import ControllerGetVolumeResponseVolumeStatus as ControllerGetVolumeResponseVolumeStatus
from plugin_host.csi.api import ControllerModifyVolumeResponse as ControllerModifyVolumeResponse
from plugin_host.csi.api import ControllerPublishVolumeResponse as ControllerPublishVolumeResponse
from plugin_host.csi.api import ControllerServiceCapability as ControllerServiceCapability
from plugin_host.csi.api import ControllerServiceCapabilityRpc as ControllerServiceCapabilityRpc
from plugin_host.csi.api import ControllerServiceCapabilityRpcType as ControllerServiceCapabilityRpcType
from plugin_host.csi.api import ControllerUnpublishVolumeResponse as ControllerUnpublishVolumeResponse
from plugin_host.csi.api import CreateSnapshotResponse as CreateSnapshotResponse
from plugin_host.csi.api import CreateVolumeGroupSnapshotResponse as CreateVolumeGroupSnapshotResponse
from plugin_host.csi.api import CreateVolumeResponse as CreateVolumeResponse
from plugin_host.csi.api import CsiPlugin as CsiPlugin
from plugin_host.csi.api import DeleteSnapshotResponse as DeleteSnapshotResponse
from plugin_host.csi.api import DeleteVolumeGroupSnapshotResponse as DeleteVolumeGroupSnapshotResponse
from plugin_host.csi.api import DeleteVolumeResponse as DeleteVolumeResponse
from plugin_host.csi.api import GetCapacityResponse as GetCapacityResponse
from plugin_host.csi.api import GetMetadataAllocatedResponse as GetMetadataAllocatedResponse
from plugin_host.csi.api import GetMetadataDeltaResponse as GetMetadataDeltaResponse
from plugin_host.csi.api import GetPluginCapabilitiesResponse as GetPluginCapabilitiesResponse
from plugin_host.csi.api import GetPluginInfoResponse as GetPluginInfoResponse
from plugin_host.csi.api import GetSnapshotResponse as GetSnapshotResponse
from plugin_host.csi.api import GetVolumeGroupSnapshotResponse as GetVolumeGroupSnapshotResponse
from plugin_host.csi.api import GroupControllerGetCapabilitiesResponse as GroupControllerGetCapabilitiesResponse
from plugin_host.csi.api import GroupControllerServiceCapability as GroupControllerServiceCapability
from plugin_host.csi.api import GroupControllerServiceCapabilityRpc as GroupControllerServiceCapabilityRpc
from plugin_host.csi.api import GroupControllerServiceCapabilityRpcType as GroupControllerServiceCapabilityRpcType
from plugin_host.csi.api import ListSnapshotsResponse as ListSnapshotsResponse
from plugin_host.csi.api import ListSnapshotsResponseEntry as ListSnapshotsResponseEntry
from plugin_host.csi.api import ListVolumesResponse as ListVolumesResponse
from plugin_host.csi.api import ListVolumesResponseEntry as ListVolumesResponseEntry
from plugin_host.csi.api import ListVolumesResponseVolumeStatus as ListVolumesResponseVolumeStatus
from plugin_host.csi.api import NodeExpandVolumeResponse as NodeExpandVolumeResponse
from plugin_host.csi.api import NodeGetCapabilitiesResponse as NodeGetCapabilitiesResponse
from plugin_host.csi.api import NodeGetInfoResponse as NodeGetInfoResponse
from plugin_host.csi.api import NodeGetVolumeStatsResponse as NodeGetVolumeStatsResponse
from plugin_host.csi.api import NodePublishVolumeResponse as NodePublishVolumeResponse
from plugin_host.csi.api import NodeServiceCapability as NodeServiceCapability
from plugin_host.csi.api import NodeServiceCapabilityRpc as NodeServiceCapabilityRpc
from plugin_host.csi.api import NodeServiceCapabilityRpcType as NodeServiceCapabilityRpcType
from plugin_host.csi.api import NodeStageVolumeResponse as NodeStageVolumeResponse
from plugin_host.csi.api import NodeUnpublishVolumeResponse as NodeUnpublishVolumeResponse
from plugin_host.csi.api import NodeUnstageVolumeResponse as NodeUnstageVolumeResponse
from plugin_host.csi.api import PluginCapability as PluginCapability
from plugin_host.csi.api import PluginCapabilityService as PluginCapabilityService
from plugin_host.csi.api import PluginCapabilityServiceType as PluginCapabilityServiceType
from plugin_host.csi.api import PluginCapabilityVolumeExpansion as PluginCapabilityVolumeExpansion
from plugin_host.csi.api import PluginCapabilityVolumeExpansionType as PluginCapabilityVolumeExpansionType
from plugin_host.csi.api import ProbeResponse as ProbeResponse
from plugin_host.csi.api import Snapshot as Snapshot
from plugin_host.csi.api import Topology as Topology
from plugin_host.csi.api import TopologyRequirement as TopologyRequirement
from plugin_host.csi.api import ValidateVolumeCapabilitiesResponse as ValidateVolumeCapabilitiesResponse
from plugin_host.csi.api import (
    ValidateVolumeCapabilitiesResponseConfirmed as ValidateVolumeCapabilitiesResponseConfirmed,
)
from plugin_host.csi.api import Volume as Volume
from plugin_host.csi.api import VolumeCapability as VolumeCapability
from plugin_host.csi.api import VolumeCapabilityAccessMode as VolumeCapabilityAccessMode
from plugin_host.csi.api import VolumeCapabilityAccessModeMode as VolumeCapabilityAccessModeMode
from plugin_host.csi.api import VolumeCapabilityBlockVolume as VolumeCapabilityBlockVolume
from plugin_host.csi.api import VolumeCapabilityMountVolume as VolumeCapabilityMountVolume
from plugin_host.csi.api import VolumeCondition as VolumeCondition
from plugin_host.csi.api import VolumeContentSource as VolumeContentSource
from plugin_host.csi.api import VolumeContentSourceSnapshotSource as VolumeContentSourceSnapshotSource
from plugin_host.csi.api import VolumeContentSourceVolumeSource as VolumeContentSourceVolumeSource
from plugin_host.csi.api import VolumeGroupSnapshot as VolumeGroupSnapshot
from plugin_host.csi.api import VolumeUsage as VolumeUsage
from plugin_host.csi.api import VolumeUsageUnit as VolumeUsageUnit
from plugin_host.csi.client import CsiClient as CsiClient
from plugin_host.csi.manager import CsiManager as CsiManager
from plugin_host.csi.server import CsiPluginServer as CsiPluginServer
from plugin_host.csi.server import csi_handlers as csi_handlers
from plugin_host.csi.watcher import PluginWatcher as PluginWatcher

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
    "CsiCapabilities",
    "CsiClient",
    "CsiClients",
    "CsiHealthChanges",
    "CsiManager",
    "CsiPlugin",
    "CsiPluginHealth",
    "CsiPluginServer",
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
    "PluginWatcher",
    "ProbeResponse",
    "Secrets",
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
    "csi_handlers",
]
