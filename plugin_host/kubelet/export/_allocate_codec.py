"""Direct protobuf coding of ``v1beta1`` Allocate: the request's device ids in, the response bytes out.

Allocate is the call kubelet waits on while a pod starts. betterproto spends most of a call's time building and
walking message objects (a profile of 1,000-device Allocates showed its ``__getattribute__`` alone above every
other Python function), and pydantic validating request and response models the server built itself. These
messages are simple enough to code by hand, so the default Allocate neither builds models nor betterproto objects:

- :class:`AllocateRequestIds` is the request type grpclib decodes with (its codec calls ``FromString``): the
  bytes become the device ids of each container request, nothing else;
- :class:`DevicePieces` holds one device's response fields already encoded (computed once per
  :class:`~plugin_host.kubelet.api.DeviceInfo`, kept while the device's info is the same object), so answering a
  one-device request (what kubelet sends) is concatenating cached bytes;
- :class:`EncodedAllocateResponse` carries the bytes through grpclib's codec (it is the handler's reply type);
- :func:`encode_allocate_response` encodes a hook's :class:`~plugin_host.kubelet.api.AllocateResponse` model.

The output decodes to the same message betterproto's encoding does (fields in number order; map entries with both
key and value written, as Go writes them). Schema::

    AllocateRequest           { repeated ContainerAllocateRequest container_requests = 1; }
    ContainerAllocateRequest  { repeated string devices_ids = 1; }
    AllocateResponse          { repeated ContainerAllocateResponse container_responses = 1; }
    ContainerAllocateResponse { map<string,string> envs = 1; repeated Mount mounts = 2; repeated DeviceSpec
                                devices = 3; map<string,string> annotations = 4; repeated CDIDevice cdi_devices = 5; }
    Mount                     { string container_path = 1; string host_path = 2; bool read_only = 3; }
    DeviceSpec                { string container_path = 1; string host_path = 2; string permissions = 3; }
    CDIDevice                 { string name = 1; }
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from plugin_host.kubelet.api import (
    AllocateResponse,
    ContainerAllocateResponse,
    KubeletDeviceSpec,
    KubeletMount,
)
from plugin_host.kubelet.export import _cdi
from plugin_host.kubelet.export.api import CdiSpec, DeviceInfo

__all__ = [
    "AllocateRequestIds",
    "DevicePieces",
    "EncodedAllocateResponse",
    "container_body",
    "decode_allocate_request",
    "encode_allocate_response",
    "encode_container_response",
]

_SMALL = [bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(1 << 14)]


def _varint(value: int) -> bytes:
    if value < 0x4000:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (tag already shifted: ``(number << 3) | 2``)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _string(tag: int, value: str) -> bytes:
    """A proto3 string field: left out when empty."""
    return _field(tag, value.encode()) if value else b""


def _map_entry(tag: int, key: str, value: str) -> bytes:
    return _field(tag, _field(0x0A, key.encode()) + _field(0x12, value.encode()))


def _mount(mount: KubeletMount) -> bytes:
    body = _string(0x0A, mount.container_path) + _string(0x12, mount.host_path)
    if mount.read_only:
        body += b"\x18\x01"
    return _field(0x12, body)


def _device_spec(node: KubeletDeviceSpec) -> bytes:
    body = _string(0x0A, node.container_path) + _string(0x12, node.host_path) + _string(0x1A, node.permissions)
    return _field(0x1A, body)


def _cdi_device(name: str) -> bytes:
    return _field(0x2A, _string(0x0A, name))


def container_body(
    envs: Mapping[str, str],
    mounts: Iterable[bytes],
    nodes: Iterable[bytes],
    annotations: Mapping[str, str],
    cdi_devices: Iterable[bytes],
) -> bytes:
    """A ``ContainerAllocateResponse`` (without its own tag) from its already encoded repeated fields."""
    parts = [_map_entry(0x0A, k, v) for k, v in envs.items()]
    parts.extend(mounts)
    parts.extend(nodes)
    parts.extend(_map_entry(0x22, k, v) for k, v in annotations.items())
    parts.extend(cdi_devices)
    return b"".join(parts)


def encode_container_response(body: bytes) -> bytes:
    """One ``container_responses`` entry of an ``AllocateResponse``."""
    return _field(0x0A, body)


@dataclass(frozen=True, slots=True)
class DevicePieces:
    """One device's share of an Allocate response, encoded once: what a default Allocate concatenates."""

    info: DeviceInfo
    """The info these pieces were made from: they are reused while the device's info is this very object."""
    mounts: tuple[bytes, ...]
    nodes: tuple[bytes, ...]
    cdi_name: str | None
    cdi_device: bytes | None
    cdi_file: str | None
    alone: bytes
    """The container response entry (tag included) of a request for this device alone."""

    @classmethod
    def of(cls, info: DeviceInfo) -> DevicePieces:
        spec: CdiSpec | None = info.cdi_spec
        cdi_name = cdi_file = None
        cdi_device = None
        if spec is not None and spec.devices:
            cdi_name = _cdi.qualified_name(spec)
            cdi_file = _cdi.spec_file_name(spec)
            cdi_device = _cdi_device(cdi_name)
        # Unique, as the default Allocate dedups (a device listing a mount twice gets it once).
        mounts = tuple(dict.fromkeys(_mount(m) for m in info.mounts))
        nodes = tuple(dict.fromkeys(_device_spec(n) for n in info.nodes))
        cdi = (cdi_device,) if cdi_device is not None else ()
        alone = encode_container_response(container_body(info.envs, mounts, nodes, info.annotations, cdi))
        return cls(info, mounts, nodes, cdi_name, cdi_device, cdi_file, alone)


class EncodedAllocateResponse:
    """An ``AllocateResponse`` already encoded, for grpclib's codec (which checks the handler's reply type, then calls
    ``SerializeToString``). Deliberately not a betterproto message: building one costs more than the whole encoding."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def SerializeToString(self) -> bytes:
        return self.encoded


def encode_allocate_response(response: AllocateResponse) -> bytes:
    """A hook's response model as bytes (what ``bytes(convert.allocate_response_to_wire(response))`` decodes to)."""
    return b"".join(_encode_container(c) for c in response.container_responses)


def _encode_container(response: ContainerAllocateResponse) -> bytes:
    return encode_container_response(
        container_body(
            response.envs,
            (_mount(m) for m in response.mounts),
            (_device_spec(d) for d in response.devices),
            response.annotations,
            (_cdi_device(name) for name in response.cdi_devices),
        )
    )


# --- the request ------------------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint longer than 10 bytes")


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    """Past an unknown field's value (proto3 parsers ignore unknown fields)."""
    if wire_type == 0:
        return _read_varint(data, pos)[1]
    if wire_type == 1:
        pos += 8
    elif wire_type == 2:
        size, pos = _read_varint(data, pos)
        pos += size
    elif wire_type == 5:
        pos += 4
    else:
        raise ValueError(f"unsupported wire type {wire_type}")
    if pos > len(data):
        raise ValueError("truncated field")
    return pos


def _fields(data: bytes) -> Iterable[tuple[int, bytes]]:
    """The length-delimited fields numbered 1 of a message, as (field number, payload); others are skipped."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 1 and wire_type == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield number, data[pos : pos + size]
            pos += size
        else:
            pos = _skip(data, pos, wire_type)


def decode_allocate_request(data: bytes) -> tuple[tuple[str, ...], ...]:
    """The device ids of each container request; ``ValueError`` (``UnicodeDecodeError``) for malformed bytes."""
    return tuple(tuple(raw.decode() for _, raw in _fields(container)) for _, container in _fields(data))


class AllocateRequestIds:
    """The request type grpclib decodes Allocate with: ``FromString`` gives the ids, no message object."""

    __slots__ = ("containers",)

    def __init__(self, containers: tuple[tuple[str, ...], ...]) -> None:
        self.containers = containers

    @classmethod
    def FromString(cls, data: bytes) -> AllocateRequestIds:
        return cls(decode_allocate_request(data))
