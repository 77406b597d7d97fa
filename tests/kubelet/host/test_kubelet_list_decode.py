"""The direct ListAndWatchResponse decoder of the registration server reads every message as betterproto does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import PluginProtocolError
from plugin_host.kubelet import DeviceInfo
from plugin_host.kubelet.export._list_encode import encode_list_response
from plugin_host.kubelet.host._list_decode import DecodedListAndWatchResponse, ListedDevice, decode_canonical


def _by_betterproto(data: bytes) -> tuple[ListedDevice, ...]:
    message = wire.ListAndWatchResponse.FromString(data)
    return tuple(
        ListedDevice(d.id, d.health, tuple(n.id for n in d.topology.nodes) if d.is_set("topology") else None)
        for d in message.devices
    )


def _device(body: bytes) -> bytes:
    return b"\x0a" + bytes([len(body)]) + body


CANONICAL = [
    ("empty message", b"", ()),
    ("empty device", _device(b""), (ListedDevice("", "", None),)),
    ("id and health", _device(b"\x0a\x01a\x12\x07Healthy"), (ListedDevice("a", "Healthy", None),)),
    ("empty topology", _device(b"\x0a\x01a\x1a\x00"), (ListedDevice("a", "", ()),)),
    (
        "nodes 0, 300 and -1",
        _device(b"\x1a\x14\x0a\x00\x0a\x03\x08\xac\x02\x0a\x0b\x08" + b"\xff" * 9 + b"\x01"),
        (ListedDevice("", "", (0, 300, -1)),),
    ),
]


@pytest.mark.parametrize(("data", "expected"), [(d, e) for _, d, e in CANONICAL], ids=[c[0] for c in CANONICAL])
def test_canonical_messages_are_read_directly(data: bytes, expected: tuple[ListedDevice, ...]) -> None:
    """Canonically written messages are read without betterproto, with the same result as betterproto's."""
    assert decode_canonical(data) == expected
    assert _by_betterproto(data) == expected
    assert DecodedListAndWatchResponse.FromString(data).devices == expected


_OUT_OF_ORDER = "Device with other fields, repeated ones or out of order"
OTHER = [
    ("health before id", _device(b"\x12\x07Healthy\x0a\x01a"), _OUT_OF_ORDER),
    ("id twice: the last wins", _device(b"\x0a\x01a\x0a\x01b"), _OUT_OF_ORDER),
    ("unknown device field", _device(b"\x0a\x01a\x20\x01"), _OUT_OF_ORDER),
    ("unknown top-level field", b"\x10\x01" + _device(b"\x0a\x01a"), "not a Device"),
    ("NUMANode with an unknown field", _device(b"\x1a\x06\x0a\x04\x08\x01\x10\x02"), "NUMANode with more than its id"),
    ("NUMANode id twice", _device(b"\x1a\x06\x0a\x04\x08\x01\x08\x02"), "NUMANode with more than its id"),
]


@pytest.mark.parametrize(("data", "refusal"), [(d, r) for _, d, r in OTHER], ids=[c[0] for c in OTHER])
def test_other_layouts_are_left_to_betterproto(data: bytes, refusal: str) -> None:
    """Messages not written the canonical way are refused by the direct reader and read by betterproto instead."""
    with pytest.raises(ValueError, match=f"^{refusal}$"):
        decode_canonical(data)
    assert DecodedListAndWatchResponse.FromString(data).devices == _by_betterproto(data)


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x05\x0a\x01a", b"\x0a\x03\x0a\x05abcde", b"\x0a\x80", b"\x0a\x02\x1a\x05", b"\x0a\x03\x0a\x01\xff"],
    ids=["device past the end", "id past its device", "truncated varint", "topology past its device", "bad utf-8"],
)
def test_broken_messages_fail_as_betterproto_does(data: bytes) -> None:
    """A broken message is not read directly; betterproto then decides: its result, or a PluginProtocolError
    caused by betterproto's exception."""
    with pytest.raises((ValueError, IndexError)):
        decode_canonical(data)
    _assert_ends_as_betterproto(data)


def _well_typed(devices: tuple[ListedDevice, ...]) -> bool:
    """Whether betterproto's reading has the proto's types (it keeps a field sent with another wire type as read)."""
    return all(
        isinstance(d.id, str)
        and isinstance(d.health, str)
        and (d.topology is None or all(type(n) is int for n in d.topology))
        for d in devices
    )


def _assert_ends_as_betterproto(data: bytes) -> None:
    expected: tuple[ListedDevice, ...] | type[Exception]
    try:
        expected = _by_betterproto(data)
    except Exception as exc:
        expected = type(exc)
    if not isinstance(expected, tuple):
        with pytest.raises(PluginProtocolError, match="bytes is not a valid ListAndWatchResponse") as caught:
            DecodedListAndWatchResponse.FromString(data)
        # betterproto's own exception, or the type check's ValueError where betterproto stored a value of another type
        # (which then broke _by_betterproto's reading).
        assert type(caught.value.__cause__) in (expected, ValueError)
        return
    if _well_typed(expected):
        assert DecodedListAndWatchResponse.FromString(data).devices == expected
        return
    with pytest.raises(PluginProtocolError, match=r"bytes is not a valid ListAndWatchResponse: .* expected") as caught:
        DecodedListAndWatchResponse.FromString(data)
    assert type(caught.value.__cause__) is ValueError


_device_maps = st.dictionaries(
    st.text(max_size=300),
    st.builds(
        DeviceInfo,
        state=st.sampled_from(["Healthy", "Unhealthy"]),
        topology=st.none() | st.lists(st.integers(0, 2**63 - 1), max_size=4).map(tuple),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(devices=_device_maps)
def test_what_we_encode_is_read_back_directly(devices: dict[str, DeviceInfo]) -> None:
    """Every list the framework encodes is read back directly, device for device, as betterproto reads it."""
    data = encode_list_response(devices)
    expected = tuple(ListedDevice(i, devices[i].state, devices[i].topology) for i in sorted(devices))
    assert decode_canonical(data) == expected == _by_betterproto(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_end_as_betterproto_ends(data: bytes) -> None:
    """For arbitrary bytes the reader gives betterproto's devices, or a PluginProtocolError where betterproto
    raises."""
    _assert_ends_as_betterproto(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_device(b"\x08\x01"), "devices[0].id is int, expected string"),
        (_device(b"\x10\x01"), "devices[0].health is int, expected string"),
        (_device(b"\x13"), "devices[0].health is NoneType, expected string"),
        (b"\x08\x01", "devices[0] is int, expected a Device"),
        (_device(b"\x18\x01"), "devices[0].topology is int, expected a TopologyInfo"),
        (_device(b"\x1a\x02\x08\x01"), "devices[0].topology.nodes[0] is int, expected a NumaNode"),
    ],
    ids=["int id", "int health", "group for health", "int device", "int topology", "int NUMA node"],
)
def test_fields_sent_with_another_wire_type_are_refused(data: bytes, problem: str) -> None:
    """betterproto keeps a field sent with another wire type as whatever it read (an int id); such a message is a
    PluginProtocolError naming the field, not devices of the wrong type."""
    with pytest.raises(PluginProtocolError, match=re.escape(problem)):
        DecodedListAndWatchResponse.FromString(data)


@pytest.mark.parametrize("last", [0x02, 0x7F], ids=["bit 64 set", "bits 64-69 set"])
def test_a_numa_id_varint_past_64_bits_is_read_as_betterproto_reads_it(last: int) -> None:
    """A 10-byte NUMA id varint carrying bits past the 64th is cut to int64 as betterproto does, not read as a
    bigger number."""
    node = b"\x08" + b"\xff" * 9 + bytes([last])
    data = _device(b"\x1a" + bytes([len(node) + 2]) + b"\x0a" + bytes([len(node)]) + node)
    expected = _by_betterproto(data)
    assert expected[0].topology is not None
    assert -(1 << 63) <= expected[0].topology[0] < 1 << 63
    assert decode_canonical(data) == expected
    assert DecodedListAndWatchResponse.FromString(data).devices == expected


def test_decoded_messages_compare_by_devices() -> None:
    """Two decoded messages are equal when their devices are; the repr gives the count."""
    data = _device(b"\x0a\x01a")
    assert DecodedListAndWatchResponse.FromString(data) == DecodedListAndWatchResponse.FromString(data)
    assert DecodedListAndWatchResponse.FromString(data) != DecodedListAndWatchResponse.FromString(b"")
    assert repr(DecodedListAndWatchResponse.FromString(data)) == "DecodedListAndWatchResponse(1 devices)"
