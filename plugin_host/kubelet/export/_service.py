"""The ``v1beta1.DevicePlugin`` gRPC service of one device type: ListAndWatch, Allocate (default or the scanner's
hook), GetPreferredAllocation, PreStartContainer and GetDevicePluginOptions.

Errors: a request we refuse (no container, unknown or unhealthy device) is ``INVALID_ARGUMENT`` naming what is
wrong; a call with no hook behind it is ``UNIMPLEMENTED``; an exception from a hook is ``UNKNOWN`` with its message
(as a Go plugin's plain error reaches kubelet), unless the hook raised a ``GRPCError`` itself.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._grpc_metrics import observed_handlers
from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import InvalidRequestError
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet.api import (
    HEALTHY,
    AllocateRequest,
    AllocateResponse,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    DevicePluginOptions,
    KubeletDeviceSpec,
    KubeletMount,
    PreferredAllocationResponse,
)
from plugin_host.kubelet.export import _cdi
from plugin_host.kubelet.export._allocate_codec import (
    AllocateRequestIds,
    DevicePieces,
    EncodedAllocateResponse,
    container_body,
    encode_allocate_response,
    encode_container_response,
)
from plugin_host.kubelet.export._cdi_writer import CdiSpecWriter
from plugin_host.kubelet.export._list_encode import EncodedListAndWatchResponse, encoded_list_response
from plugin_host.kubelet.export.api import USE_DEFAULT, CdiSpec, DeviceInfo

__all__ = ["DeviceState", "DeviceTypeService", "Hooks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hooks:
    """The optional hooks found on a scanner object (each sync or async), None where absent."""

    allocate: Callable[..., Any] | None = None
    post_allocate: Callable[..., Any] | None = None
    get_preferred_allocation: Callable[..., Any] | None = None
    pre_start_container: Callable[..., Any] | None = None

    @classmethod
    def of(cls, obj: object | None) -> Hooks:
        """Look the hooks up on ``obj`` by name; attributes that are not callable do not count."""

        def find(name: str) -> Callable[..., Any] | None:
            hook = getattr(obj, name, None)
            return hook if callable(hook) else None

        return cls(
            allocate=find("allocate"),
            post_allocate=find("post_allocate"),
            get_preferred_allocation=find("get_preferred_allocation"),
            pre_start_container=find("pre_start_container"),
        )

    @property
    def options(self) -> DevicePluginOptions:
        """What to advertise to kubelet."""
        return DevicePluginOptions(
            pre_start_required=self.pre_start_container is not None,
            get_preferred_allocation_available=self.get_preferred_allocation is not None,
        )


async def _call(hook: Callable[..., Any], argument: Any) -> Any:
    result = hook(argument)
    if inspect.isawaitable(result):
        result = await result
    return result


class DeviceState:
    """The current devices of one type and a wake-up for every ListAndWatch stream when they change or end."""

    def __init__(self) -> None:
        self.devices: Mapping[str, DeviceInfo] = {}
        self.version = 0
        self.closed = False
        self._changed = anyio.Event()
        self._message: tuple[int, EncodedListAndWatchResponse] | None = None

    def list_response(self) -> EncodedListAndWatchResponse:
        """The current devices as ListAndWatch sends them, encoded once per version whatever the number of streams.

        Encoded on first use: versions no stream sends are never encoded.
        """
        if self._message is None or self._message[0] != self.version:
            self._message = (self.version, encoded_list_response(self.devices))
        return self._message[1]

    def update(self, devices: Mapping[str, DeviceInfo]) -> None:
        """Replace the devices (a copy is kept) and wake the streams; ignored once closed."""
        if self.closed:
            return
        self.devices = dict(devices)
        self.version += 1
        self._wake()

    def close(self) -> None:
        """Tell every stream to finish."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()


@contextmanager
def _hook_errors(rpc: str, resource: str) -> Iterator[None]:
    try:
        yield
    except GRPCError:
        raise
    except InvalidRequestError as exc:
        # The hook refused what kubelet asked for (an unknown or unhealthy id): kubelet's own code for that.
        raise GRPCError(Status.INVALID_ARGUMENT, f"{rpc} for {resource}: {exc}") from exc
    except Exception as exc:
        logger.warning("%s hook of %s raised", rpc, resource, exc_info=True)
        raise GRPCError(Status.UNKNOWN, f"{rpc} for {resource} failed: {str(exc) or type(exc).__name__}") from exc


def _check_type(rpc: str, hook: str, value: Any, expected: type[Any]) -> None:
    if not isinstance(value, expected):
        raise GRPCError(
            Status.INTERNAL, f"{rpc}: the {hook} hook returned {type(value).__name__}, expected {expected.__name__}"
        )


def _unique(items: list[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


class DeviceTypeService:
    """``v1beta1.DevicePlugin`` for one resource, backed by a :class:`DeviceState` and the scanner's hooks."""

    def __init__(
        self, resource: str, state: DeviceState, hooks: Hooks, cdi_dir: Path, *, metrics: Metrics = NO_METRICS
    ) -> None:
        self._metrics = metrics
        self._resource = resource
        self._state = state
        self._hooks = hooks
        self._cdi_dir = cdi_dir
        self._cdi = CdiSpecWriter(cdi_dir)
        # device id -> its encoded share of a response, reused while the device's info is the same object
        self._pieces: dict[str, DevicePieces] = {}
        self.streams = 0
        self._streams_done = anyio.Event()
        self._streams_done.set()
        self.generation = 0
        """Bumped by the server before each Register: streams opened since belong to that registration."""
        self.lost_generation = -1
        """The generation of the last stream that ended without our asking (its client went away)."""

    def __mapping__(self) -> dict[str, Handler]:
        service = convert.DEVICE_PLUGIN_SERVICE
        unary = Cardinality.UNARY_UNARY
        handlers = {
            f"{service}/GetDevicePluginOptions": Handler(
                self._get_options, unary, wire.Empty, wire.DevicePluginOptions
            ),
            f"{service}/ListAndWatch": Handler(
                self._list_and_watch, Cardinality.UNARY_STREAM, wire.Empty, wire.ListAndWatchResponse
            ),
            f"{service}/GetPreferredAllocation": Handler(
                self._get_preferred_allocation,
                unary,
                wire.PreferredAllocationRequest,
                wire.PreferredAllocationResponse,
            ),
            # Decoded and encoded by hand (_allocate_codec): no betterproto objects on kubelet's hot path.
            f"{service}/Allocate": Handler(self._allocate, unary, AllocateRequestIds, EncodedAllocateResponse),
            f"{service}/PreStartContainer": Handler(
                self._pre_start_container, unary, wire.PreStartContainerRequest, wire.PreStartContainerResponse
            ),
        }
        return observed_handlers(handlers, "kubelet", self._metrics)

    async def wait_streams_done(self) -> None:
        """Return once no ListAndWatch stream is open."""
        await self._streams_done.wait()

    # --- handlers -------------------------------------------------------------------------------------------------

    async def _get_options(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(convert.options_to_wire(self._hooks.options))

    async def _list_and_watch(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        state = self._state
        if self.streams == 0:
            self._streams_done = anyio.Event()
        self.streams += 1
        generation = self.generation
        try:
            sent = -1
            while not state.closed:
                if state.version == sent:
                    await state.wait_changed()
                    continue
                sent = state.version
                # The whole list every time: kubelet replaces its view of the resource with each message. Every
                # stream sends the same bytes, encoded once per version.
                await stream.send_message(state.list_response())
        finally:
            self.streams -= 1
            if self.streams == 0:
                self._streams_done.set()
            if not state.closed:
                # kubelet went away (restart, crash) or replaced this stream; the server decides which.
                self.lost_generation = max(self.lost_generation, generation)

    async def _allocate(self, stream: Stream[Any, Any]) -> None:
        message: AllocateRequestIds | None = await stream.recv_message()
        containers = message.containers if message is not None else ()
        if not containers:
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"Allocate for {self._resource}: no container requests, expected at least one"
            )
        hooks = self._hooks
        if hooks.allocate is None and hooks.post_allocate is None:
            # The default Allocate with nobody to see models: cached bytes, no pydantic, no betterproto.
            await stream.send_message(EncodedAllocateResponse(await self._default_allocate_encoded(containers)))
            return
        # The ids come from protobuf strings: already a tuple of str each, nothing for pydantic to check.
        request = AllocateRequest.model_construct(
            container_requests=tuple(ContainerAllocateRequest.model_construct(devices_ids=ids) for ids in containers)
        )
        response: AllocateResponse | None = None
        if hooks.allocate is not None:
            with _hook_errors("Allocate", self._resource):
                result = await _call(hooks.allocate, request)
            if result is not USE_DEFAULT:
                _check_type("Allocate", "allocate", result, AllocateResponse)
                response = result
        if response is None:
            if hooks.post_allocate is None:
                await stream.send_message(EncodedAllocateResponse(await self._default_allocate_encoded(containers)))
                return
            response = await self._default_allocate(request)
        if hooks.post_allocate is not None:
            with _hook_errors("Allocate", self._resource):
                replaced = await _call(hooks.post_allocate, response)
            if replaced is not None:
                _check_type("Allocate", "post_allocate", replaced, AllocateResponse)
                response = replaced
        await stream.send_message(EncodedAllocateResponse(encode_allocate_response(response)))

    async def _get_preferred_allocation(self, stream: Stream[Any, Any]) -> None:
        message = await stream.recv_message()
        hook = self._hooks.get_preferred_allocation
        if hook is None:
            raise GRPCError(
                Status.UNIMPLEMENTED,
                f"GetPreferredAllocation: the plugin for {self._resource} has no get_preferred_allocation hook"
                " (get_preferred_allocation_available is false)",
            )
        request = convert.preferred_allocation_request_from_wire(message or wire.PreferredAllocationRequest())
        with _hook_errors("GetPreferredAllocation", self._resource):
            response = await _call(hook, request)
        _check_type("GetPreferredAllocation", "get_preferred_allocation", response, PreferredAllocationResponse)
        await stream.send_message(convert.preferred_allocation_response_to_wire(response))

    async def _pre_start_container(self, stream: Stream[Any, Any]) -> None:
        message = await stream.recv_message()
        hook = self._hooks.pre_start_container
        if hook is None:
            raise GRPCError(
                Status.UNIMPLEMENTED,
                f"PreStartContainer: the plugin for {self._resource} has no pre_start_container hook"
                " (pre_start_required is false)",
            )
        request = convert.pre_start_request_from_wire(message or wire.PreStartContainerRequest())
        with _hook_errors("PreStartContainer", self._resource):
            await _call(hook, request)
        await stream.send_message(wire.PreStartContainerResponse())

    # --- the default Allocate -------------------------------------------------------------------------------------

    def _device(self, devices: Mapping[str, DeviceInfo], index: int, dev_id: str) -> DeviceInfo:
        """The device ``dev_id`` of container request ``index``; ``INVALID_ARGUMENT`` when unknown or unhealthy."""
        info = devices.get(dev_id)
        if info is None:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"Allocate for {self._resource}: container request {index} asks for device {dev_id!r},"
                " which does not exist",
            )
        if info.state != HEALTHY:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"Allocate for {self._resource}: container request {index} asks for device {dev_id!r},"
                f" which is {info.state}, expected {HEALTHY}",
            )
        return info

    def _pieces_of(self, dev_id: str, info: DeviceInfo) -> DevicePieces:
        pieces = self._pieces.get(dev_id)
        if pieces is None or pieces.info is not info:
            if len(self._pieces) > 2 * len(self._state.devices) + 64:
                self._pieces.clear()  # ids that come and go must not pile up
            pieces = self._pieces[dev_id] = DevicePieces.of(info)
        return pieces

    async def _default_allocate_encoded(self, containers: tuple[tuple[str, ...], ...]) -> bytes:
        """The default Allocate as response bytes: what :meth:`_default_allocate` answers, from cached pieces."""
        devices = self._state.devices  # replaced, never mutated, on update: one consistent view for the call
        specs: dict[str, CdiSpec] = {}
        parts: list[bytes] = []
        for index, ids in enumerate(containers):
            all_pieces = [self._pieces_of(dev_id, self._device(devices, index, dev_id)) for dev_id in ids]
            for pieces in all_pieces:
                if pieces.cdi_file is not None:
                    spec = pieces.info.cdi_spec
                    assert spec is not None
                    specs.setdefault(pieces.cdi_file, spec)
            if len(all_pieces) == 1:
                parts.append(all_pieces[0].alone)  # what kubelet asks: one device
                continue
            envs: dict[str, str] = {}
            annotations: dict[str, str] = {}
            for pieces in all_pieces:
                envs.update(pieces.info.envs)
                annotations.update(pieces.info.annotations)
            # Devices sharing a node, mount or CDI device would otherwise hand the runtime duplicates it rejects.
            parts.append(
                encode_container_response(
                    container_body(
                        envs,
                        dict.fromkeys(m for p in all_pieces for m in p.mounts),
                        dict.fromkeys(n for p in all_pieces for n in p.nodes),
                        annotations,
                        dict.fromkeys(p.cdi_device for p in all_pieces if p.cdi_device is not None),
                    )
                )
            )
        for file_name, spec in specs.items():
            await self._write_spec(file_name, spec)
        return b"".join(parts)

    async def _default_allocate(self, request: AllocateRequest) -> AllocateResponse:
        devices = self._state.devices  # replaced, never mutated, on update: one consistent view for the call
        specs: dict[str, CdiSpec] = {}
        containers = []
        for index, container in enumerate(request.container_requests):
            nodes: list[KubeletDeviceSpec] = []
            mounts: list[KubeletMount] = []
            envs: dict[str, str] = {}
            annotations: dict[str, str] = {}
            cdi_names: list[str] = []
            for dev_id in container.devices_ids:
                info = self._device(devices, index, dev_id)
                nodes.extend(info.nodes)
                mounts.extend(info.mounts)
                envs.update(info.envs)
                annotations.update(info.annotations)
                if info.cdi_spec is not None and info.cdi_spec.devices:
                    cdi_names.append(_cdi.qualified_name(info.cdi_spec))
                    specs.setdefault(_cdi.spec_file_name(info.cdi_spec), info.cdi_spec)
            # Devices sharing a node, mount or CDI device would otherwise hand the runtime duplicates it rejects.
            containers.append(
                ContainerAllocateResponse(
                    envs=envs,
                    mounts=_unique(mounts),
                    devices=_unique(nodes),
                    annotations=annotations,
                    cdi_devices=_unique(cdi_names),
                )
            )
        for file_name, spec in specs.items():
            await self._write_spec(file_name, spec)
        return AllocateResponse(container_responses=tuple(containers))

    async def _write_spec(self, file_name: str, spec: CdiSpec) -> None:
        if self._cdi.is_current(file_name, spec):
            return  # the common case: one stat, nothing written
        try:
            await self._cdi.ensure(file_name, spec)
        except OSError as exc:
            logger.error("writing the CDI spec of %s to %s failed: %s", _cdi.qualified_name(spec), self._cdi_dir, exc)
            raise GRPCError(
                Status.INTERNAL,
                f"Allocate for {self._resource}: writing the CDI spec {file_name!r} to"
                f" {str(self._cdi_dir)!r} failed: {exc}",
            ) from exc
