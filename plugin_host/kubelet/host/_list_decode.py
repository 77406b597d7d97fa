"""A direct decoder for ``v1beta1.ListAndWatchResponse``, kubelet's side of the stream (the registration server).

betterproto needs well over 100 ms to parse 1,000 ``Device`` messages. Messages written the canonical way (every
field in number order, each at most once, no unknown fields: what protobuf, betterproto and Go's encoder write)
are read here directly; anything else is handed to betterproto, so unusual input is read exactly as before. A
message neither can read raises :class:`~plugin_host.errors.PluginProtocolError` (betterproto's own exception as its
cause), and so does one betterproto reads with a value of the wrong type (a field sent with another wire type: an
``int`` id): whoever consumes the stream sees one error type instead of whatever betterproto stumbled on.
Schema: see :mod:`plugin_host.kubelet.export._list_encode`.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import PluginProtocolError
from plugin_host.kubelet.host._reply_decode import wire_type_problem

__all__ = ["DecodedListAndWatchResponse", "ListedDevice", "RawListAndWatchResponse", "decode_canonical"]


@dataclass(frozen=True, slots=True)
class ListedDevice:
    """One device of a ListAndWatch message; ``topology`` is None when the field is absent."""

    id: str
    health: str
    topology: tuple[int, ...] | None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; IndexError/ValueError when truncated or too long."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value = byte & 0x7F
    shift = 7
    while True:
        pos += 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos + 1
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _topology(data: bytes, pos: int, end: int) -> tuple[int, ...]:
    nodes = []
    while pos < end:
        if data[pos] != 0x0A:
            raise ValueError("not a NUMANode")
        size, pos = _varint(data, pos + 1)
        node_end = pos + size
        if node_end > end:
            raise ValueError("NUMANode past its topology")
        node = 0
        if pos < node_end:
            if data[pos] != 0x08:
                raise ValueError("not a NUMANode id")
            node, pos = _varint(data, pos + 1)
            # int64 as protobuf reads it: bits past the 64th of a 10-byte varint are dropped, then two's complement.
            node &= (1 << 64) - 1
            if node >= 1 << 63:
                node -= 1 << 64
        if pos != node_end:
            raise ValueError("NUMANode with more than its id")
        nodes.append(node)
    return tuple(nodes)


def decode_canonical(data: bytes) -> tuple[ListedDevice, ...]:
    """The devices of a canonically written message; ValueError (or IndexError) for anything else."""
    devices = []
    pos = 0
    total = len(data)
    while pos < total:
        if data[pos] != 0x0A:
            raise ValueError("not a Device")
        size, pos = _varint(data, pos + 1)
        end = pos + size
        if end > total:
            raise ValueError("Device past the message")
        dev_id = health = ""
        topology = None
        if pos < end and data[pos] == 0x0A:
            size, pos = _varint(data, pos + 1)
            if pos + size > end:
                raise ValueError("string past its Device")
            dev_id = data[pos : pos + size].decode()
            pos += size
        if pos < end and data[pos] == 0x12:
            size, pos = _varint(data, pos + 1)
            if pos + size > end:
                raise ValueError("string past its Device")
            health = data[pos : pos + size].decode()
            pos += size
        if pos < end and data[pos] == 0x1A:
            size, pos = _varint(data, pos + 1)
            if pos + size > end:
                raise ValueError("topology past its Device")
            topology = _topology(data, pos, pos + size)
            pos += size
        if pos != end:
            raise ValueError("Device with other fields, repeated ones or out of order")
        devices.append(ListedDevice(dev_id, health, topology))
    return tuple(devices)


def _read_by_betterproto(data: bytes) -> tuple[ListedDevice, ...]:
    try:
        message = wire.ListAndWatchResponse.FromString(data)
        # betterproto keeps a field sent with another wire type as whatever it read (an int for an id...).
        problem = wire_type_problem(message)
        if problem is not None:
            raise ValueError(problem)
        return tuple(
            ListedDevice(
                device.id,
                device.health,
                tuple(node.id for node in device.topology.nodes) if device.is_set("topology") else None,
            )
            for device in message.devices
        )
    except Exception as exc:  # betterproto raises anything from ValueError to AttributeError on bad input
        raise PluginProtocolError(
            f"a ListAndWatch message of {len(data)} bytes is not a valid ListAndWatchResponse: {exc!r}"
        ) from exc


class DecodedListAndWatchResponse:
    """A ListAndWatch message as the reply type of a grpclib call: grpclib's codec calls :meth:`FromString`."""

    __slots__ = ("devices",)

    def __init__(self, devices: tuple[ListedDevice, ...]) -> None:
        self.devices = devices

    @classmethod
    def FromString(cls, data: bytes) -> DecodedListAndWatchResponse:
        try:
            devices = decode_canonical(data)
        except (ValueError, IndexError):
            # Not written the canonical way (or not valid at all): betterproto reads it, or it is refused.
            devices = _read_by_betterproto(data)
        return cls(devices)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecodedListAndWatchResponse):
            return self.devices == other.devices
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DecodedListAndWatchResponse({len(self.devices)} devices)"


class RawListAndWatchResponse:
    """A ListAndWatch message kept as its bytes: grpclib's codec calls :meth:`FromString` on the event loop, and a
    100,000-device message takes far too long to decode there; :class:`DecodedListAndWatchResponse` reads the
    bytes later (in a worker thread when they are many)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def FromString(cls, data: bytes) -> RawListAndWatchResponse:
        return cls(data)
