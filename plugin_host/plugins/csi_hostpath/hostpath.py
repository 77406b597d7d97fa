"""A small CSI plugin that keeps volumes as directories: Identity, Controller and Node in one object.

Volumes live under ``data_dir/volumes/<volume_id>/`` with their metadata (name, capacity) beside them in
``<volume_id>.json``. Publishing a volume on the node bind-mounts its directory at the target path when running as
root and the mount works, and otherwise makes the target path a symlink to it.

It keeps to the spec where a CO can tell: CreateVolume and DeleteVolume are idempotent, a second CreateVolume with
the same name and an incompatible capacity (or a requisite topology without this node) is ``ALREADY_EXISTS``, a new
volume whose requisite topology excludes this node is ``RESOURCE_EXHAUSTED``, an unknown volume is ``NOT_FOUND``,
and a request missing a REQUIRED field is ``INVALID_ARGUMENT`` naming it
(:class:`plugin_host.csi.server.CsiPluginServer` checks that before a method runs). Serve it with
``CsiPluginServer(HostpathPlugin(...), socket_path)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

import anyio
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from plugin_host.csi import api
from plugin_host.csi import requests as req

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_NAME", "VERSION", "HostpathPlugin"]

logger = logging.getLogger(__name__)

DEFAULT_NAME = "hostpath.csi.plugin-host.dev"
VERSION = "0.1.0"
# Capacity of a volume created without a capacity range.
DEFAULT_CAPACITY = 1 << 30
# Topology segment key naming the node a volume lives on.
TOPOLOGY_KEY = "topology.hostpath.csi.plugin-host.dev/node"

_SUPPORTED_MODES = frozenset(
    {
        api.VolumeCapabilityAccessModeMode.SINGLE_NODE_WRITER,
        api.VolumeCapabilityAccessModeMode.SINGLE_NODE_READER_ONLY,
        api.VolumeCapabilityAccessModeMode.SINGLE_NODE_SINGLE_WRITER,
        api.VolumeCapabilityAccessModeMode.SINGLE_NODE_MULTI_WRITER,
    }
)


def _controller_capability(kind: api.ControllerServiceCapabilityRpcType) -> api.ControllerServiceCapability:
    return api.ControllerServiceCapability(rpc=api.ControllerServiceCapabilityRpc(type=kind))


def _node_capability(kind: api.NodeServiceCapabilityRpcType) -> api.NodeServiceCapability:
    return api.NodeServiceCapability(rpc=api.NodeServiceCapabilityRpc(type=kind))


def _unsupported(capabilities: tuple[api.VolumeCapability, ...]) -> str | None:
    """Why the plugin cannot serve one of ``capabilities``, or None when it can serve them all."""
    for capability in capabilities:
        if capability.block is not None:
            return "block access is not supported, only mount"
        if capability.access_mode.mode not in _SUPPORTED_MODES:
            return f"access mode {capability.access_mode.mode} is not supported, only single-node modes"
    return None


def _size(capacity: api.CapacityRange | None) -> int:
    if capacity is None:
        return DEFAULT_CAPACITY
    if capacity.limit_bytes and capacity.required_bytes > capacity.limit_bytes:
        raise GRPCError(
            Status.OUT_OF_RANGE,
            f"capacity_range.required_bytes {capacity.required_bytes} exceeds limit_bytes {capacity.limit_bytes}",
        )
    if capacity.required_bytes:
        return capacity.required_bytes
    return min(DEFAULT_CAPACITY, capacity.limit_bytes) if capacity.limit_bytes else DEFAULT_CAPACITY


def _fits(size: int, capacity: api.CapacityRange | None) -> bool:
    if capacity is None:
        return True
    return size >= capacity.required_bytes and (not capacity.limit_bytes or size <= capacity.limit_bytes)


def _reachable(requirements: api.TopologyRequirement | None, node_id: str) -> bool:
    """Whether a volume on ``node_id`` meets ``requirements``: only ``requisite`` limits where a volume may live."""
    if requirements is None or not requirements.requisite:
        return True
    return any(topology.segments.get(TOPOLOGY_KEY) == node_id for topology in requirements.requisite)


def _used_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except FileNotFoundError:
                continue
    return total


def _mount_points() -> set[str]:
    """Every mount point of this process (os.path.ismount misses a bind mount within one filesystem)."""
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    # Field 5 is the mount point, with space, tab, newline and backslash escaped as octal.
    return {
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        for line in text.splitlines()
        if line.strip()
    }


def _is_mount(path: Path) -> bool:
    if path.is_symlink() or not path.is_dir():
        return False
    return os.path.ismount(path) or str(path.resolve()) in _mount_points()


def _published_at(source: Path, target: Path) -> bool:
    """Whether ``source`` is already published at ``target``; raises when ``target`` is taken by something else."""
    if target.is_symlink():
        if target.resolve() == source.resolve():
            return True
        raise GRPCError(Status.ALREADY_EXISTS, f"target_path {str(target)!r} is published for another volume")
    if _is_mount(target):
        if os.path.samefile(target, source):
            return True
        raise GRPCError(Status.ALREADY_EXISTS, f"target_path {str(target)!r} is a mount of something else")
    if not target.parent.is_dir():
        raise GRPCError(Status.FAILED_PRECONDITION, f"parent of target_path {str(target)!r} does not exist")
    return False


def _make_mountpoint(target: Path) -> bool:
    """Create ``target`` as an empty directory if missing; whether it was created."""
    if target.exists():
        return False
    target.mkdir()
    return True


def _symlink(source: Path, target: Path) -> None:
    """Publish by symlink: an empty directory the CO created at ``target`` is replaced."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists():
        raise GRPCError(Status.FAILED_PRECONDITION, f"target_path {str(target)!r} exists and is not empty")
    target.symlink_to(source, target_is_directory=True)


def _unlink_symlink(target: Path) -> bool:
    if target.is_symlink():
        target.unlink()
        return True
    return False


class HostpathPlugin:
    """Identity, Controller and Node services over volumes kept as directories in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        name: str = DEFAULT_NAME,
        node_id: str | None = None,
        max_volumes_per_node: int = 0,
    ) -> None:
        self._volumes = Path(data_dir) / "volumes"
        self._name = name
        self._node_id = node_id or socket.gethostname()
        self._max_volumes = max_volumes_per_node
        # Create, delete and publish read-modify-write the directory; one at a time keeps them idempotent.
        self._lock = anyio.Lock()
        self.ready = True

    # --- storage --------------------------------------------------------------------------------------------------

    def _meta_path(self, volume_id: str) -> Path:
        return self._volumes / f"{volume_id}.json"

    def _volume_dir(self, volume_id: str) -> Path:
        return self._volumes / volume_id

    def _load(self, volume_id: str) -> api.Volume | None:
        if "/" in volume_id or volume_id.startswith("."):
            return None
        try:
            meta = json.loads(self._meta_path(volume_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return self._volume(volume_id, meta)

    def _volume(self, volume_id: str, meta: dict[str, object]) -> api.Volume:
        capacity = meta.get("capacity_bytes", 0)
        return api.Volume(
            volume_id=volume_id,
            capacity_bytes=capacity if isinstance(capacity, int) else 0,
            volume_context={"name": str(meta.get("name", ""))},
            accessible_topology=(api.Topology(segments={TOPOLOGY_KEY: self._node_id}),),
        )

    def _all(self) -> list[tuple[str, dict[str, object]]]:
        if not self._volumes.is_dir():
            return []
        found = []
        for path in sorted(self._volumes.glob("*.json")):
            try:
                found.append((path.stem, json.loads(path.read_text(encoding="utf-8"))))
            except FileNotFoundError:
                continue
        return found

    def _require(self, volume_id: str) -> api.Volume:
        volume = self._load(volume_id)
        if volume is None:
            raise GRPCError(Status.NOT_FOUND, f"volume {volume_id!r} does not exist")
        return volume

    # --- Identity -------------------------------------------------------------------------------------------------

    async def get_plugin_info(self, request: req.GetPluginInfoRequest) -> api.GetPluginInfoResponse:
        return api.GetPluginInfoResponse(name=self._name, vendor_version=VERSION, manifest={"url": "examples/"})

    async def get_plugin_capabilities(
        self, request: req.GetPluginCapabilitiesRequest
    ) -> api.GetPluginCapabilitiesResponse:
        service = api.PluginCapabilityService
        kind = api.PluginCapabilityServiceType
        return api.GetPluginCapabilitiesResponse(
            capabilities=(
                api.PluginCapability(service=service(type=kind.CONTROLLER_SERVICE)),
                api.PluginCapability(service=service(type=kind.VOLUME_ACCESSIBILITY_CONSTRAINTS)),
            )
        )

    async def probe(self, request: req.ProbeRequest) -> api.ProbeResponse:
        return api.ProbeResponse(ready=self.ready)

    # --- Controller -----------------------------------------------------------------------------------------------

    async def controller_get_capabilities(
        self, request: req.ControllerGetCapabilitiesRequest
    ) -> api.ControllerGetCapabilitiesResponse:
        kind = api.ControllerServiceCapabilityRpcType
        return api.ControllerGetCapabilitiesResponse(
            capabilities=tuple(
                _controller_capability(k) for k in (kind.CREATE_DELETE_VOLUME, kind.LIST_VOLUMES, kind.GET_CAPACITY)
            )
        )

    async def create_volume(self, request: req.CreateVolumeRequest) -> api.CreateVolumeResponse:
        reason = _unsupported(request.volume_capabilities)
        if reason is not None:
            raise GRPCError(Status.INVALID_ARGUMENT, f"CreateVolume {request.name!r}: {reason}")
        if request.volume_content_source is not None:
            raise GRPCError(Status.INVALID_ARGUMENT, "CreateVolume: volume_content_source is not supported")
        size = _size(request.capacity_range)
        reachable = _reachable(request.accessibility_requirements, self._node_id)
        async with self._lock:
            for volume_id, meta in self._all():
                if meta.get("name") != request.name:
                    continue
                existing = self._volume(volume_id, meta)
                if not reachable:
                    raise GRPCError(
                        Status.ALREADY_EXISTS,
                        f"volume {request.name!r} exists on node {self._node_id!r}, not in the requisite topology",
                    )
                if not _fits(existing.capacity_bytes, request.capacity_range):
                    raise GRPCError(
                        Status.ALREADY_EXISTS,
                        f"volume {request.name!r} exists with capacity {existing.capacity_bytes} bytes, "
                        f"incompatible with the requested range",
                    )
                return api.CreateVolumeResponse(volume=existing)
            if not reachable:
                # Every volume lives on this node (VOLUME_ACCESSIBILITY_CONSTRAINTS): the spec's "unable to provision".
                raise GRPCError(
                    Status.RESOURCE_EXHAUSTED,
                    f"volume {request.name!r} can only be provisioned on node {self._node_id!r},"
                    " not in the requisite topology",
                )
            volume_id = uuid.uuid4().hex
            self._volume_dir(volume_id).mkdir(parents=True)
            meta = {"name": request.name, "capacity_bytes": size}
            staging = self._volumes / f".{volume_id}.json.tmp"
            staging.write_text(json.dumps(meta), encoding="utf-8")
            staging.replace(self._meta_path(volume_id))
        logger.info("created volume %s (%s, %d bytes)", volume_id, request.name, size)
        return api.CreateVolumeResponse(volume=self._volume(volume_id, meta))

    async def delete_volume(self, request: req.DeleteVolumeRequest) -> api.DeleteVolumeResponse:
        async with self._lock:
            if self._load(request.volume_id) is not None:
                # Metadata first: a crash in between leaves an orphan directory, never a volume without data.
                self._meta_path(request.volume_id).unlink(missing_ok=True)
                shutil.rmtree(self._volume_dir(request.volume_id), ignore_errors=True)
                logger.info("deleted volume %s", request.volume_id)
        return api.DeleteVolumeResponse()

    async def validate_volume_capabilities(
        self, request: req.ValidateVolumeCapabilitiesRequest
    ) -> api.ValidateVolumeCapabilitiesResponse:
        self._require(request.volume_id)
        reason = _unsupported(request.volume_capabilities)
        if reason is not None:
            return api.ValidateVolumeCapabilitiesResponse(message=reason)
        confirmed = api.ValidateVolumeCapabilitiesResponseConfirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return api.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    async def list_volumes(self, request: req.ListVolumesRequest) -> api.ListVolumesResponse:
        volumes = self._all()
        start = 0
        if request.starting_token:
            if not request.starting_token.isdigit() or int(request.starting_token) > len(volumes):
                raise GRPCError(Status.ABORTED, f"starting_token {request.starting_token!r} is not valid")
            start = int(request.starting_token)
        end = len(volumes) if request.max_entries == 0 else min(len(volumes), start + request.max_entries)
        entries = tuple(
            api.ListVolumesResponseEntry(volume=self._volume(volume_id, meta)) for volume_id, meta in volumes[start:end]
        )
        return api.ListVolumesResponse(entries=entries, next_token=str(end) if end < len(volumes) else "")

    async def get_capacity(self, request: req.GetCapacityRequest) -> api.GetCapacityResponse:
        self._volumes.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self._volumes).free
        return api.GetCapacityResponse(available_capacity=free, maximum_volume_size=free)

    # --- Node -----------------------------------------------------------------------------------------------------

    async def node_get_info(self, request: req.NodeGetInfoRequest) -> api.NodeGetInfoResponse:
        return api.NodeGetInfoResponse(
            node_id=self._node_id,
            max_volumes_per_node=self._max_volumes,
            accessible_topology=api.Topology(segments={TOPOLOGY_KEY: self._node_id}),
        )

    async def node_get_capabilities(self, request: req.NodeGetCapabilitiesRequest) -> api.NodeGetCapabilitiesResponse:
        return api.NodeGetCapabilitiesResponse(
            capabilities=(_node_capability(api.NodeServiceCapabilityRpcType.GET_VOLUME_STATS),)
        )

    async def node_publish_volume(self, request: req.NodePublishVolumeRequest) -> api.NodePublishVolumeResponse:
        reason = _unsupported((request.volume_capability,))
        if reason is not None:
            raise GRPCError(Status.INVALID_ARGUMENT, f"NodePublishVolume {request.volume_id!r}: {reason}")
        source = self._volume_dir(self._require(request.volume_id).volume_id)
        target = Path(request.target_path)
        async with self._lock:
            if await anyio.to_thread.run_sync(_published_at, source, target):
                return api.NodePublishVolumeResponse()
            if not await self._bind_mount(source, target, readonly=request.readonly):
                await anyio.to_thread.run_sync(_symlink, source, target)
        logger.info("published volume %s at %s", request.volume_id, target)
        return api.NodePublishVolumeResponse()

    async def _bind_mount(self, source: Path, target: Path, *, readonly: bool) -> bool:
        """Bind-mount ``source`` at ``target`` when we are root and mounting works; False means use a symlink."""
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return False
        created = await anyio.to_thread.run_sync(_make_mountpoint, target)
        options = "bind,ro" if readonly else "bind"
        result = await anyio.run_process(["mount", "-o", options, str(source), str(target)], check=False)
        if result.returncode != 0:
            logger.debug("bind mount failed (%s), publishing %s as a symlink", result.stderr.strip(), target)
            if created:
                await anyio.Path(target).rmdir()
            return False
        return True

    async def node_unpublish_volume(self, request: req.NodeUnpublishVolumeRequest) -> api.NodeUnpublishVolumeResponse:
        self._require(request.volume_id)
        target = Path(request.target_path)
        async with self._lock:
            if await anyio.to_thread.run_sync(_unlink_symlink, target):
                pass
            elif await anyio.to_thread.run_sync(_is_mount, target):
                result = await anyio.run_process(["umount", str(target)], check=False)
                if result.returncode != 0:
                    raise GRPCError(Status.INTERNAL, f"umount {str(target)!r} failed: {result.stderr.decode().strip()}")
                await anyio.Path(target).rmdir()
        logger.info("unpublished volume %s from %s", request.volume_id, target)
        return api.NodeUnpublishVolumeResponse()

    async def node_get_volume_stats(self, request: req.NodeGetVolumeStatsRequest) -> api.NodeGetVolumeStatsResponse:
        volume = self._require(request.volume_id)
        if not await anyio.Path(request.volume_path).exists():
            raise GRPCError(Status.NOT_FOUND, f"volume_path {request.volume_path!r} does not exist")
        used = await anyio.to_thread.run_sync(_used_bytes, self._volume_dir(volume.volume_id))
        usage = api.VolumeUsage(
            total=volume.capacity_bytes,
            used=used,
            available=max(0, volume.capacity_bytes - used),
            unit=api.VolumeUsageUnit.BYTES,
        )
        return api.NodeGetVolumeStatsResponse(usage=(usage,))
