"""The CSI RPC table: for every method, its gRPC path and the wire and domain types of its request and reply.

One table serves the client, the example plugin and the tests, so a method's types are written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from plugin_host._proto.csi import v1 as wire
from plugin_host.csi import api
from plugin_host.csi import requests as req

__all__ = ["RPCS", "Rpc"]


@dataclass(frozen=True, slots=True)
class Rpc:
    """One CSI method."""

    service: str  # "Identity", "Controller", "Node", "GroupController", "SnapshotMetadata"
    name: str  # "GetPluginInfo"
    request: type[BaseModel]
    wire_request: type[Any]
    reply: type[BaseModel]
    wire_reply: type[Any]
    streaming: bool = False

    @property
    def path(self) -> str:
        """The gRPC method path, ``/csi.v1.<Service>/<Method>``."""
        return f"/csi.v1.{self.service}/{self.name}"


def _rpc(service: str, name: str, *, streaming: bool = False) -> Rpc:
    return Rpc(
        service=service,
        name=name,
        request=getattr(req, f"{name}Request"),
        wire_request=getattr(wire, f"{name}Request"),
        reply=getattr(api, f"{name}Response"),
        wire_reply=getattr(wire, f"{name}Response"),
        streaming=streaming,
    )


_METHODS: dict[str, tuple[str, ...]] = {
    "Identity": ("GetPluginInfo", "GetPluginCapabilities", "Probe"),
    "Controller": (
        "CreateVolume",
        "DeleteVolume",
        "ControllerPublishVolume",
        "ControllerUnpublishVolume",
        "ValidateVolumeCapabilities",
        "ListVolumes",
        "GetCapacity",
        "ControllerGetCapabilities",
        "CreateSnapshot",
        "DeleteSnapshot",
        "ListSnapshots",
        "GetSnapshot",
        "ControllerExpandVolume",
        "ControllerGetVolume",
        "ControllerModifyVolume",
    ),
    "GroupController": (
        "GroupControllerGetCapabilities",
        "CreateVolumeGroupSnapshot",
        "DeleteVolumeGroupSnapshot",
        "GetVolumeGroupSnapshot",
    ),
    "Node": (
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
        "NodeGetCapabilities",
        "NodeGetInfo",
    ),
    "SnapshotMetadata": ("GetMetadataAllocated", "GetMetadataDelta"),
}

# RPC name → its description; SnapshotMetadata's two methods stream their replies.
RPCS: dict[str, Rpc] = {
    name: _rpc(service, name, streaming=service == "SnapshotMetadata")
    for service, names in _METHODS.items()
    for name in names
}
