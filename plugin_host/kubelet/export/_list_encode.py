"""A direct protobuf encoder for ``v1beta1.ListAndWatchResponse``: the one message sent on every device change.

betterproto needs tens of milliseconds to encode a list of 1,000 ``Device`` messages; these few messages are simple
enough to write by hand (proto3: strings and int64 set only when not empty/zero, sub-messages length-delimited),
so the hot path skips building and walking betterproto objects. The output is byte-identical to betterproto's and
to Google protobuf's for the same message (fields in number order, as both write them; table- and property-tested).

Schema (``k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1``)::

    ListAndWatchResponse { repeated Device devices = 1; }
    Device               { string ID = 1; string health = 2; TopologyInfo topology = 3; }
    TopologyInfo         { repeated NUMANode nodes = 1; }
    NUMANode             { int64 ID = 1; }

:class:`EncodedListAndWatchResponse` carries such bytes through grpclib's codec, which calls
``SerializeToString()`` on the message it is given after checking its type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from plugin_host._proto import v1beta1 as wire
from plugin_host.kubelet._convert import topology_to_wire
from plugin_host.kubelet.export.api import DeviceInfo

__all__ = [
    "EncodedListAndWatchResponse",
    "device_to_wire",
    "encode_device",
    "encode_list_response",
    "encoded_list_response",
    "list_response_to_wire",
]

# Tags: (field number << 3) | wire type; wire type 0 is a varint, 2 is length-delimited.
_TAG_1_LEN = b"\x0a"  # ListAndWatchResponse.devices, Device.ID, TopologyInfo.nodes
_TAG_2_LEN = b"\x12"  # Device.health
_TAG_3_LEN = b"\x1a"  # Device.topology
_TAG_1_VARINT = b"\x08"  # NUMANode.ID
_INT64_RANGE = range(-(1 << 63), 1 << 63)

# Most lengths and NUMA ids are small: their varints come from a table.
_SMALL = [bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(1 << 14)]


def _varint(value: int) -> bytes:
    """``value`` (0 <= value < 2**64) as a protobuf base-128 varint."""
    if value < len(_SMALL):
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _numa_node(node: int) -> bytes:
    if node not in _INT64_RANGE:
        raise ValueError(f"NUMA node id {node} is out of the int64 range")
    # int64 on the wire: zero is left out; a negative value is its 64-bit two's complement (10 bytes).
    body = _TAG_1_VARINT + _varint(node & 0xFFFFFFFFFFFFFFFF) if node else b""
    return _length_delimited(_TAG_1_LEN, body)


def encode_device(dev_id: str, health: str, topology: Iterable[int] | None) -> bytes:
    """One ``Device`` message (without its tag and length); ``topology`` None leaves the field out."""
    parts: list[bytes] = []
    if dev_id:
        parts.append(_length_delimited(_TAG_1_LEN, dev_id.encode()))
    if health:
        parts.append(_length_delimited(_TAG_2_LEN, health.encode()))
    if topology is not None:
        # A present topology is written even when it has no nodes: it differs from an absent one.
        parts.append(_length_delimited(_TAG_3_LEN, b"".join(_numa_node(node) for node in topology)))
    return b"".join(parts)


def encode_list_response(devices: Mapping[str, DeviceInfo]) -> bytes:
    """The ``ListAndWatchResponse`` of a device map, in id order: ``bytes(list_response_to_wire(devices))``."""
    # encode_device unrolled: the health and topology fields repeat across devices and are encoded once each.
    small = _SMALL
    health_fields: dict[str, bytes] = {}
    topology_fields: dict[tuple[int, ...] | None, bytes] = {}
    parts: list[bytes] = []
    append = parts.append
    for dev_id in sorted(devices):
        info = devices[dev_id]
        health = health_fields.get(info.state)
        if health is None:
            health = health_fields[info.state] = encode_device("", info.state, None)
        topology = topology_fields.get(info.topology)
        if topology is None:
            topology = topology_fields[info.topology] = encode_device("", "", info.topology)
        raw_id = dev_id.encode()
        size = len(raw_id)
        body = (_TAG_1_LEN + (small[size] if size < 0x4000 else _varint(size)) + raw_id if size else b"") + health
        if topology:
            body += topology
        size = len(body)
        append(_TAG_1_LEN + (small[size] if size < 0x4000 else _varint(size)) + body)
    return b"".join(parts)


class EncodedListAndWatchResponse(wire.ListAndWatchResponse):  # type: ignore[misc]  # generated code is unchecked
    """A ``ListAndWatchResponse`` already encoded: serializing it returns the stored bytes, whoever sends it.

    Its fields are left empty (decode ``encoded`` to read it); only serialization is meant to be used.
    """

    # betterproto builds a class's field metadata by resolving its type hints in the class's module, where this
    # subclass's forward references ("Device") do not resolve: share the generated class's metadata instead.
    _betterproto_meta = wire.ListAndWatchResponse._betterproto

    def __init__(self, encoded: bytes) -> None:
        super().__init__()
        self.encoded = encoded

    def __bytes__(self) -> bytes:
        return self.encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedListAndWatchResponse):
            return self.encoded == other.encoded
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as every betterproto message

    def SerializeToString(self) -> bytes:
        return self.encoded


def encoded_list_response(devices: Mapping[str, DeviceInfo]) -> EncodedListAndWatchResponse:
    """The message to send for a device map, encoded once."""
    return EncodedListAndWatchResponse(encode_list_response(devices))


# --- the same messages through betterproto: the reference the encoder above is tested against ----------------------


def device_to_wire(dev_id: str, info: DeviceInfo) -> wire.Device:
    """One device of a tree as ListAndWatch sends it."""
    return wire.Device(id=dev_id, health=info.state, topology=topology_to_wire(info.topology))


def list_response_to_wire(devices: Mapping[str, DeviceInfo]) -> wire.ListAndWatchResponse:
    """The full device list of one type, in id order."""
    return wire.ListAndWatchResponse(devices=[device_to_wire(dev_id, devices[dev_id]) for dev_id in sorted(devices)])
