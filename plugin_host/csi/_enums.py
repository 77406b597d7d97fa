"""The CSI v1.12 enums, by name: ``StrEnum`` members whose value is their name, so plain strings compare equal.

Re-exported from :mod:`plugin_host.csi.api`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BlockMetadataType",
    "ControllerServiceCapabilityRpcType",
    "GroupControllerServiceCapabilityRpcType",
    "NodeServiceCapabilityRpcType",
    "PluginCapabilityServiceType",
    "PluginCapabilityVolumeExpansionType",
    "VolumeCapabilityAccessModeMode",
    "VolumeUsageUnit",
]


class PluginCapabilityServiceType(StrEnum):
    """``PluginCapability.Service.Type``."""

    UNKNOWN = "UNKNOWN"
    CONTROLLER_SERVICE = "CONTROLLER_SERVICE"
    VOLUME_ACCESSIBILITY_CONSTRAINTS = "VOLUME_ACCESSIBILITY_CONSTRAINTS"
    GROUP_CONTROLLER_SERVICE = "GROUP_CONTROLLER_SERVICE"
    SNAPSHOT_METADATA_SERVICE = "SNAPSHOT_METADATA_SERVICE"


class PluginCapabilityVolumeExpansionType(StrEnum):
    """``PluginCapability.VolumeExpansion.Type``."""

    UNKNOWN = "UNKNOWN"
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class VolumeCapabilityAccessModeMode(StrEnum):
    """``VolumeCapability.AccessMode.Mode``."""

    UNKNOWN = "UNKNOWN"
    SINGLE_NODE_WRITER = "SINGLE_NODE_WRITER"
    SINGLE_NODE_READER_ONLY = "SINGLE_NODE_READER_ONLY"
    MULTI_NODE_READER_ONLY = "MULTI_NODE_READER_ONLY"
    MULTI_NODE_SINGLE_WRITER = "MULTI_NODE_SINGLE_WRITER"
    MULTI_NODE_MULTI_WRITER = "MULTI_NODE_MULTI_WRITER"
    SINGLE_NODE_SINGLE_WRITER = "SINGLE_NODE_SINGLE_WRITER"
    SINGLE_NODE_MULTI_WRITER = "SINGLE_NODE_MULTI_WRITER"


class ControllerServiceCapabilityRpcType(StrEnum):
    """``ControllerServiceCapability.RPC.Type``."""

    UNKNOWN = "UNKNOWN"
    CREATE_DELETE_VOLUME = "CREATE_DELETE_VOLUME"
    PUBLISH_UNPUBLISH_VOLUME = "PUBLISH_UNPUBLISH_VOLUME"
    LIST_VOLUMES = "LIST_VOLUMES"
    GET_CAPACITY = "GET_CAPACITY"
    CREATE_DELETE_SNAPSHOT = "CREATE_DELETE_SNAPSHOT"
    LIST_SNAPSHOTS = "LIST_SNAPSHOTS"
    CLONE_VOLUME = "CLONE_VOLUME"
    PUBLISH_READONLY = "PUBLISH_READONLY"
    EXPAND_VOLUME = "EXPAND_VOLUME"
    LIST_VOLUMES_PUBLISHED_NODES = "LIST_VOLUMES_PUBLISHED_NODES"
    VOLUME_CONDITION = "VOLUME_CONDITION"
    GET_VOLUME = "GET_VOLUME"
    SINGLE_NODE_MULTI_WRITER = "SINGLE_NODE_MULTI_WRITER"
    MODIFY_VOLUME = "MODIFY_VOLUME"
    GET_SNAPSHOT = "GET_SNAPSHOT"


class NodeServiceCapabilityRpcType(StrEnum):
    """``NodeServiceCapability.RPC.Type``."""

    UNKNOWN = "UNKNOWN"
    STAGE_UNSTAGE_VOLUME = "STAGE_UNSTAGE_VOLUME"
    GET_VOLUME_STATS = "GET_VOLUME_STATS"
    EXPAND_VOLUME = "EXPAND_VOLUME"
    VOLUME_CONDITION = "VOLUME_CONDITION"
    SINGLE_NODE_MULTI_WRITER = "SINGLE_NODE_MULTI_WRITER"
    VOLUME_MOUNT_GROUP = "VOLUME_MOUNT_GROUP"


class GroupControllerServiceCapabilityRpcType(StrEnum):
    """``GroupControllerServiceCapability.RPC.Type``."""

    UNKNOWN = "UNKNOWN"
    CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT = "CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT"


class VolumeUsageUnit(StrEnum):
    """``VolumeUsage.Unit``."""

    UNKNOWN = "UNKNOWN"
    BYTES = "BYTES"
    INODES = "INODES"


class BlockMetadataType(StrEnum):
    """``BlockMetadataType`` (SnapshotMetadata service)."""

    UNKNOWN = "UNKNOWN"
    FIXED_LENGTH = "FIXED_LENGTH"
    VARIABLE_LENGTH = "VARIABLE_LENGTH"
