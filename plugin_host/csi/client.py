"""Talk to a CSI plugin over its Unix socket: one async method per CSI RPC, speaking pydantic models.

``async with CsiClient("/run/csi/hostpath.sock") as client:`` opens one gRPC channel that any number of tasks may
share. Each method takes the request message's fields as keyword arguments (nested messages as models of
:mod:`plugin_host.csi.api` or plain dicts of the same shape, enums by name) and returns the reply as a model.

Every call has a deadline: ``timeout=`` seconds, or the client's default. Errors are translated at this edge:

- a request that breaks the spec (a REQUIRED field empty, a malformed nested value) → :class:`InvalidRequestError`
  naming the RPC and the field, and nothing is sent;
- the socket is missing, not a socket, refuses, drops the call, or does not speak HTTP/2 →
  :class:`PluginUnavailableError` naming the path;
- no reply by the deadline → :class:`PluginTimeoutError` (a ``TimeoutError``);
- an error status → :class:`PluginRPCError` (``code`` is the status name, e.g. ``"NOT_FOUND"``);
- a reply that breaks the spec (empty plugin ``name``, a volume without ``volume_id``) → :class:`PluginProtocolError`
  naming the RPC and the field.

Requests are logged at DEBUG; secrets show as ``'***'`` there, in reprs, and in every error message (values a plugin
echoes back in its status are scrubbed too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from plugin_host.csi import api
from plugin_host.csi._calls import DEFAULT_TIMEOUT, CsiCalls

__all__ = ["DEFAULT_TIMEOUT", "CsiClient"]

_Capability = api.VolumeCapability | Mapping[str, Any]
_Capacity = api.CapacityRange | Mapping[str, Any]
_Topology = api.Topology | Mapping[str, Any]
_StrMap = Mapping[str, str]


class CsiClient(CsiCalls):
    """A CSI plugin reached over ``socket_path``; use as ``async with CsiClient(path) as client:``.

    ``timeout`` is the default deadline of every call in seconds (each method's ``timeout=`` overrides it).
    """

    # --- Identity -------------------------------------------------------------------------------------------------

    async def get_plugin_info(self, *, timeout: float | None = None) -> api.GetPluginInfoResponse:
        """The plugin's name, vendor version and manifest."""
        reply: api.GetPluginInfoResponse = await self._call("GetPluginInfo", timeout)
        return reply

    async def get_plugin_capabilities(self, *, timeout: float | None = None) -> api.GetPluginCapabilitiesResponse:
        """What the plugin supports as a whole (services, volume expansion)."""
        reply: api.GetPluginCapabilitiesResponse = await self._call("GetPluginCapabilities", timeout)
        return reply

    async def probe(self, *, timeout: float | None = None) -> bool | None:
        """Whether the plugin is ready; ``None`` when it answered without saying (the spec treats that as ready)."""
        reply: api.ProbeResponse = await self._call("Probe", timeout)
        return reply.ready

    # --- Controller -----------------------------------------------------------------------------------------------

    async def create_volume(
        self,
        *,
        name: str,
        volume_capabilities: Sequence[_Capability],
        capacity_range: _Capacity | None = None,
        parameters: _StrMap | None = None,
        secrets: _StrMap | None = None,
        volume_content_source: api.VolumeContentSource | Mapping[str, Any] | None = None,
        accessibility_requirements: api.TopologyRequirement | Mapping[str, Any] | None = None,
        mutable_parameters: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.CreateVolumeResponse:
        """Provision a volume (idempotent on ``name``)."""
        reply: api.CreateVolumeResponse = await self._call(
            "CreateVolume",
            timeout,
            name=name,
            volume_capabilities=volume_capabilities,
            capacity_range=capacity_range,
            parameters=parameters,
            secrets=secrets,
            volume_content_source=volume_content_source,
            accessibility_requirements=accessibility_requirements,
            mutable_parameters=mutable_parameters,
        )
        return reply

    async def delete_volume(
        self, *, volume_id: str, secrets: _StrMap | None = None, timeout: float | None = None
    ) -> api.DeleteVolumeResponse:
        """Delete a volume (deleting an unknown volume succeeds)."""
        reply: api.DeleteVolumeResponse = await self._call(
            "DeleteVolume", timeout, volume_id=volume_id, secrets=secrets
        )
        return reply

    async def controller_publish_volume(
        self,
        *,
        volume_id: str,
        node_id: str,
        volume_capability: _Capability,
        readonly: bool = False,
        secrets: _StrMap | None = None,
        volume_context: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.ControllerPublishVolumeResponse:
        """Make a volume available on a node."""
        reply: api.ControllerPublishVolumeResponse = await self._call(
            "ControllerPublishVolume",
            timeout,
            volume_id=volume_id,
            node_id=node_id,
            volume_capability=volume_capability,
            readonly=readonly,
            secrets=secrets,
            volume_context=volume_context,
        )
        return reply

    async def controller_unpublish_volume(
        self, *, volume_id: str, node_id: str = "", secrets: _StrMap | None = None, timeout: float | None = None
    ) -> api.ControllerUnpublishVolumeResponse:
        """Undo ControllerPublishVolume (``node_id=""``: on every node)."""
        reply: api.ControllerUnpublishVolumeResponse = await self._call(
            "ControllerUnpublishVolume", timeout, volume_id=volume_id, node_id=node_id, secrets=secrets
        )
        return reply

    async def validate_volume_capabilities(
        self,
        *,
        volume_id: str,
        volume_capabilities: Sequence[_Capability],
        volume_context: _StrMap | None = None,
        parameters: _StrMap | None = None,
        secrets: _StrMap | None = None,
        mutable_parameters: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.ValidateVolumeCapabilitiesResponse:
        """Whether a volume supports the capabilities (``confirmed`` set) or not."""
        reply: api.ValidateVolumeCapabilitiesResponse = await self._call(
            "ValidateVolumeCapabilities",
            timeout,
            volume_id=volume_id,
            volume_capabilities=volume_capabilities,
            volume_context=volume_context,
            parameters=parameters,
            secrets=secrets,
            mutable_parameters=mutable_parameters,
        )
        return reply

    async def list_volumes(
        self, *, max_entries: int = 0, starting_token: str = "", timeout: float | None = None
    ) -> api.ListVolumesResponse:
        """One page of volumes; pass ``next_token`` back as ``starting_token`` for the next."""
        reply: api.ListVolumesResponse = await self._call(
            "ListVolumes", timeout, max_entries=max_entries, starting_token=starting_token
        )
        return reply

    async def get_capacity(
        self,
        *,
        volume_capabilities: Sequence[_Capability] = (),
        parameters: _StrMap | None = None,
        accessible_topology: _Topology | None = None,
        timeout: float | None = None,
    ) -> api.GetCapacityResponse:
        """Capacity available for new volumes."""
        reply: api.GetCapacityResponse = await self._call(
            "GetCapacity",
            timeout,
            volume_capabilities=volume_capabilities,
            parameters=parameters,
            accessible_topology=accessible_topology,
        )
        return reply

    async def controller_get_capabilities(
        self, *, timeout: float | None = None
    ) -> api.ControllerGetCapabilitiesResponse:
        """The optional Controller RPCs the plugin implements."""
        reply: api.ControllerGetCapabilitiesResponse = await self._call("ControllerGetCapabilities", timeout)
        return reply

    async def create_snapshot(
        self,
        *,
        source_volume_id: str,
        name: str,
        secrets: _StrMap | None = None,
        parameters: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.CreateSnapshotResponse:
        """Snapshot a volume (idempotent on ``name``)."""
        reply: api.CreateSnapshotResponse = await self._call(
            "CreateSnapshot",
            timeout,
            source_volume_id=source_volume_id,
            name=name,
            secrets=secrets,
            parameters=parameters,
        )
        return reply

    async def delete_snapshot(
        self, *, snapshot_id: str, secrets: _StrMap | None = None, timeout: float | None = None
    ) -> api.DeleteSnapshotResponse:
        """Delete a snapshot."""
        reply: api.DeleteSnapshotResponse = await self._call(
            "DeleteSnapshot", timeout, snapshot_id=snapshot_id, secrets=secrets
        )
        return reply

    async def list_snapshots(
        self,
        *,
        max_entries: int = 0,
        starting_token: str = "",
        source_volume_id: str = "",
        snapshot_id: str = "",
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.ListSnapshotsResponse:
        """One page of snapshots, optionally of one volume or only one snapshot."""
        reply: api.ListSnapshotsResponse = await self._call(
            "ListSnapshots",
            timeout,
            max_entries=max_entries,
            starting_token=starting_token,
            source_volume_id=source_volume_id,
            snapshot_id=snapshot_id,
            secrets=secrets,
        )
        return reply

    async def get_snapshot(
        self, *, snapshot_id: str, secrets: _StrMap | None = None, timeout: float | None = None
    ) -> api.GetSnapshotResponse:
        """One snapshot (alpha RPC)."""
        reply: api.GetSnapshotResponse = await self._call(
            "GetSnapshot", timeout, snapshot_id=snapshot_id, secrets=secrets
        )
        return reply

    async def controller_expand_volume(
        self,
        *,
        volume_id: str,
        capacity_range: _Capacity,
        secrets: _StrMap | None = None,
        volume_capability: _Capability | None = None,
        timeout: float | None = None,
    ) -> api.ControllerExpandVolumeResponse:
        """Grow a volume."""
        reply: api.ControllerExpandVolumeResponse = await self._call(
            "ControllerExpandVolume",
            timeout,
            volume_id=volume_id,
            capacity_range=capacity_range,
            secrets=secrets,
            volume_capability=volume_capability,
        )
        return reply

    async def controller_get_volume(
        self, *, volume_id: str, timeout: float | None = None
    ) -> api.ControllerGetVolumeResponse:
        """One volume and its status (alpha RPC)."""
        reply: api.ControllerGetVolumeResponse = await self._call("ControllerGetVolume", timeout, volume_id=volume_id)
        return reply

    async def controller_modify_volume(
        self,
        *,
        volume_id: str,
        mutable_parameters: _StrMap,
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.ControllerModifyVolumeResponse:
        """Change a volume's mutable parameters."""
        reply: api.ControllerModifyVolumeResponse = await self._call(
            "ControllerModifyVolume",
            timeout,
            volume_id=volume_id,
            mutable_parameters=mutable_parameters,
            secrets=secrets,
        )
        return reply

    # --- Node -----------------------------------------------------------------------------------------------------

    async def node_stage_volume(
        self,
        *,
        volume_id: str,
        staging_target_path: str,
        volume_capability: _Capability,
        publish_context: _StrMap | None = None,
        secrets: _StrMap | None = None,
        volume_context: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.NodeStageVolumeResponse:
        """Prepare a volume on this node."""
        reply: api.NodeStageVolumeResponse = await self._call(
            "NodeStageVolume",
            timeout,
            volume_id=volume_id,
            staging_target_path=staging_target_path,
            volume_capability=volume_capability,
            publish_context=publish_context,
            secrets=secrets,
            volume_context=volume_context,
        )
        return reply

    async def node_unstage_volume(
        self, *, volume_id: str, staging_target_path: str, timeout: float | None = None
    ) -> api.NodeUnstageVolumeResponse:
        """Undo NodeStageVolume."""
        reply: api.NodeUnstageVolumeResponse = await self._call(
            "NodeUnstageVolume", timeout, volume_id=volume_id, staging_target_path=staging_target_path
        )
        return reply

    async def node_publish_volume(
        self,
        *,
        volume_id: str,
        target_path: str,
        volume_capability: _Capability,
        publish_context: _StrMap | None = None,
        staging_target_path: str = "",
        readonly: bool = False,
        secrets: _StrMap | None = None,
        volume_context: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.NodePublishVolumeResponse:
        """Make a volume available at ``target_path``."""
        reply: api.NodePublishVolumeResponse = await self._call(
            "NodePublishVolume",
            timeout,
            volume_id=volume_id,
            target_path=target_path,
            volume_capability=volume_capability,
            publish_context=publish_context,
            staging_target_path=staging_target_path,
            readonly=readonly,
            secrets=secrets,
            volume_context=volume_context,
        )
        return reply

    async def node_unpublish_volume(
        self, *, volume_id: str, target_path: str, timeout: float | None = None
    ) -> api.NodeUnpublishVolumeResponse:
        """Undo NodePublishVolume."""
        reply: api.NodeUnpublishVolumeResponse = await self._call(
            "NodeUnpublishVolume", timeout, volume_id=volume_id, target_path=target_path
        )
        return reply

    async def node_get_volume_stats(
        self, *, volume_id: str, volume_path: str, staging_target_path: str = "", timeout: float | None = None
    ) -> api.NodeGetVolumeStatsResponse:
        """Usage of a published volume."""
        reply: api.NodeGetVolumeStatsResponse = await self._call(
            "NodeGetVolumeStats",
            timeout,
            volume_id=volume_id,
            volume_path=volume_path,
            staging_target_path=staging_target_path,
        )
        return reply

    async def node_expand_volume(
        self,
        *,
        volume_id: str,
        volume_path: str,
        capacity_range: _Capacity | None = None,
        staging_target_path: str = "",
        volume_capability: _Capability | None = None,
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.NodeExpandVolumeResponse:
        """Grow a volume's filesystem on this node."""
        reply: api.NodeExpandVolumeResponse = await self._call(
            "NodeExpandVolume",
            timeout,
            volume_id=volume_id,
            volume_path=volume_path,
            capacity_range=capacity_range,
            staging_target_path=staging_target_path,
            volume_capability=volume_capability,
            secrets=secrets,
        )
        return reply

    async def node_get_capabilities(self, *, timeout: float | None = None) -> api.NodeGetCapabilitiesResponse:
        """The optional Node RPCs the plugin implements."""
        reply: api.NodeGetCapabilitiesResponse = await self._call("NodeGetCapabilities", timeout)
        return reply

    async def node_get_info(self, *, timeout: float | None = None) -> api.NodeGetInfoResponse:
        """This node's id for the plugin, its volume limit and its topology."""
        reply: api.NodeGetInfoResponse = await self._call("NodeGetInfo", timeout)
        return reply

    # --- GroupController ------------------------------------------------------------------------------------------

    async def group_controller_get_capabilities(
        self, *, timeout: float | None = None
    ) -> api.GroupControllerGetCapabilitiesResponse:
        """The optional GroupController RPCs the plugin implements."""
        reply: api.GroupControllerGetCapabilitiesResponse = await self._call("GroupControllerGetCapabilities", timeout)
        return reply

    async def create_volume_group_snapshot(
        self,
        *,
        name: str,
        source_volume_ids: Sequence[str],
        secrets: _StrMap | None = None,
        parameters: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.CreateVolumeGroupSnapshotResponse:
        """Snapshot several volumes together (idempotent on ``name``)."""
        reply: api.CreateVolumeGroupSnapshotResponse = await self._call(
            "CreateVolumeGroupSnapshot",
            timeout,
            name=name,
            source_volume_ids=source_volume_ids,
            secrets=secrets,
            parameters=parameters,
        )
        return reply

    async def delete_volume_group_snapshot(
        self,
        *,
        group_snapshot_id: str,
        snapshot_ids: Sequence[str],
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.DeleteVolumeGroupSnapshotResponse:
        """Delete a group snapshot."""
        reply: api.DeleteVolumeGroupSnapshotResponse = await self._call(
            "DeleteVolumeGroupSnapshot",
            timeout,
            group_snapshot_id=group_snapshot_id,
            snapshot_ids=snapshot_ids,
            secrets=secrets,
        )
        return reply

    async def get_volume_group_snapshot(
        self,
        *,
        group_snapshot_id: str,
        snapshot_ids: Sequence[str],
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> api.GetVolumeGroupSnapshotResponse:
        """One group snapshot."""
        reply: api.GetVolumeGroupSnapshotResponse = await self._call(
            "GetVolumeGroupSnapshot",
            timeout,
            group_snapshot_id=group_snapshot_id,
            snapshot_ids=snapshot_ids,
            secrets=secrets,
        )
        return reply

    # --- SnapshotMetadata (alpha, server streams) -----------------------------------------------------------------

    def get_metadata_allocated(
        self,
        *,
        snapshot_id: str,
        starting_offset: int = 0,
        max_results: int = 0,
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[api.GetMetadataAllocatedResponse]:
        """Stream the allocated blocks of a snapshot; ``timeout`` bounds the whole stream."""
        return self._stream(
            "GetMetadataAllocated",
            timeout,
            snapshot_id=snapshot_id,
            starting_offset=starting_offset,
            max_results=max_results,
            secrets=secrets,
        )

    def get_metadata_delta(
        self,
        *,
        base_snapshot_id: str,
        target_snapshot_id: str,
        starting_offset: int = 0,
        max_results: int = 0,
        secrets: _StrMap | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[api.GetMetadataDeltaResponse]:
        """Stream the blocks that changed between two snapshots; ``timeout`` bounds the whole stream."""
        return self._stream(
            "GetMetadataDelta",
            timeout,
            base_snapshot_id=base_snapshot_id,
            target_snapshot_id=target_snapshot_id,
            starting_offset=starting_offset,
            max_results=max_results,
            secrets=secrets,
        )
