"""The hand-written ListAndWatchResponse encoder: byte-identical to betterproto and Google protobuf; one encode per
device change shared by every ListAndWatch stream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpclib.client import Channel
from grpclib.const import Cardinality
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_host._proto import v1beta1 as wire
from plugin_host.kubelet import DeviceInfo, DeviceTypeServer, KubeletDevice
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet.export import _service
from plugin_host.kubelet.export._list_encode import (
    EncodedListAndWatchResponse,
    encode_device,
    encode_list_response,
    encoded_list_response,
    list_response_to_wire,
)

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
API_PROTO = "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto"
WAIT = 5.0


@pytest.fixture(scope="module")
def google_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Google protobuf message classes for our v1beta1 api.proto, built from protoc's descriptor set."""
    out = tmp_path_factory.mktemp("descriptor") / "v1beta1.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", API_PROTO],
        check=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1beta1.{name}"))
        for name in ("ListAndWatchResponse", "Device", "TopologyInfo", "NUMANode")
    }


def _google_bytes(messages: dict[str, Any], devices: Mapping[str, DeviceInfo]) -> bytes:
    response = messages["ListAndWatchResponse"]()
    for dev_id in sorted(devices):
        info = devices[dev_id]
        device = response.devices.add(ID=dev_id, health=info.state)
        if info.topology is not None:
            device.topology.SetInParent()  # present even with no nodes
            for node in info.topology:
                device.topology.nodes.add(ID=node)
    data: bytes = response.SerializeToString()
    return data


def _betterproto_bytes(devices: Mapping[str, DeviceInfo]) -> bytes:
    return bytes(list_response_to_wire(devices))


CASES: list[tuple[str, dict[str, DeviceInfo], bytes]] = [
    ("no devices", {}, b""),
    ("one healthy", {"a": DeviceInfo()}, b"\x0a\x0c\x0a\x01a\x12\x07Healthy"),
    ("unhealthy", {"b": DeviceInfo(state="Unhealthy")}, b"\x0a\x0e\x0a\x01b\x12\x09Unhealthy"),
    ("empty id left out", {"": DeviceInfo()}, b"\x0a\x09\x12\x07Healthy"),
    ("empty topology is present", {"a": DeviceInfo(topology=())}, b"\x0a\x0e\x0a\x01a\x12\x07Healthy\x1a\x00"),
    (
        "node 0 is an empty NUMANode",
        {"a": DeviceInfo(topology=(0,))},
        b"\x0a\x10\x0a\x01a\x12\x07Healthy\x1a\x02\x0a\x00",
    ),
    (
        "two-byte varint node",
        {"a": DeviceInfo(topology=(1, 300))},
        b"\x0a\x17\x0a\x01a\x12\x07Healthy\x1a\x09\x0a\x02\x08\x01\x0a\x03\x08\xac\x02",
    ),
    (
        "sorted by id",
        {"b": DeviceInfo(), "a": DeviceInfo()},
        b"\x0a\x0c\x0a\x01a\x12\x07Healthy\x0a\x0c\x0a\x01b\x12\x07Healthy",
    ),
    ("utf-8 id", {"é": DeviceInfo()}, b"\x0a\x0d\x0a\x02\xc3\xa9\x12\x07Healthy"),
    (
        "200-byte id: two-byte lengths",
        {"x" * 200: DeviceInfo()},
        b"\x0a\xd4\x01\x0a\xc8\x01" + b"x" * 200 + b"\x12\x07Healthy",
    ),
]


@pytest.mark.parametrize(("devices", "expected"), [(d, e) for _, d, e in CASES], ids=[c[0] for c in CASES])
def test_table_matches_hand_computed_betterproto_and_google_bytes(
    google_messages: dict[str, Any], devices: dict[str, DeviceInfo], expected: bytes
) -> None:
    """Each table row encodes to the hand-computed bytes, which betterproto and Google protobuf also produce."""
    assert encode_list_response(devices) == expected
    assert _betterproto_bytes(devices) == expected
    assert _google_bytes(google_messages, devices) == expected


def test_long_ids_past_the_varint_table_match(google_messages: dict[str, Any]) -> None:
    """Ids longer than 16 KiB (three-byte lengths, computed rather than looked up) still encode identically."""
    devices = {"y" * 20000: DeviceInfo(topology=(2**62,)), "z" * 16384: DeviceInfo(state="Unhealthy")}
    assert encode_list_response(devices) == _betterproto_bytes(devices) == _google_bytes(google_messages, devices)


@pytest.mark.parametrize("node", [-1, -(2**63), 2**63 - 1, 127, 128, 16383, 16384])
def test_encode_device_int64_nodes_match_betterproto(node: int) -> None:
    """NUMA ids across the int64 range (negative ones as 10-byte two's complement) match betterproto's Device."""
    expected = bytes(wire.Device(id="d", health="Healthy", topology=wire.TopologyInfo(nodes=[wire.NumaNode(id=node)])))
    assert encode_device("d", "Healthy", (node,)) == expected


@pytest.mark.parametrize("node", [2**63, -(2**63) - 1])
def test_encode_device_refuses_nodes_outside_int64(node: int) -> None:
    """A NUMA id that int64 cannot hold is refused with a message naming it."""
    with pytest.raises(ValueError, match=f"NUMA node id {node} is out of the int64 range"):
        encode_device("d", "Healthy", (node,))


_device_maps = st.dictionaries(
    st.text(max_size=40),
    st.builds(
        DeviceInfo,
        state=st.sampled_from(["Healthy", "Unhealthy"]),
        topology=st.none() | st.tuples() | st.lists(st.integers(0, 2**63 - 1), max_size=4).map(tuple),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(devices=_device_maps)
def test_random_device_maps_encode_like_betterproto_and_google(
    google_messages: dict[str, Any], devices: dict[str, DeviceInfo]
) -> None:
    """For random device maps (ids, health, absent/empty/any NUMA nodes) all three encoders agree byte for byte."""
    encoded = encode_list_response(devices)
    assert encoded == _betterproto_bytes(devices)
    assert encoded == _google_bytes(google_messages, devices)
    listed = tuple(KubeletDevice(id=i, health=devices[i].state, topology=devices[i].topology) for i in sorted(devices))
    assert convert.list_response_from_wire(wire.ListAndWatchResponse.FromString(encoded)) == listed


def test_encoded_message_passes_as_a_list_and_watch_response() -> None:
    """The pre-encoded message is a ListAndWatchResponse (grpclib's type check) whose serialization is the bytes."""
    devices = {"a": DeviceInfo(topology=(1,)), "b": DeviceInfo(state="Unhealthy")}
    message = encoded_list_response(devices)
    assert isinstance(message, wire.ListAndWatchResponse)
    assert bytes(message) == message.SerializeToString() == _betterproto_bytes(devices)
    assert len(message) == len(message.encoded)
    assert message == EncodedListAndWatchResponse(_betterproto_bytes(devices))
    assert message != encoded_list_response({"a": DeviceInfo()})


class _Raw(bytes):
    """A reply type that keeps each message's bytes as received."""

    @classmethod
    def FromString(cls, data: bytes) -> _Raw:
        return cls(data)


@pytest.mark.anyio
async def test_concurrent_streams_receive_identical_bytes_from_one_encode_per_change(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ListAndWatch streams get the same bytes for every change, each change encoded once for both."""
    encodes: list[int] = []

    def counting(devices: Mapping[str, DeviceInfo]) -> EncodedListAndWatchResponse:
        encodes.append(len(devices))
        return encoded_list_response(devices)

    monkeypatch.setattr(_service, "encoded_list_response", counting)
    first = {f"d{i:03d}": DeviceInfo(topology=(i % 2,)) for i in range(200)}
    second = {**first, "d007": DeviceInfo(state="Unhealthy", topology=(1,))}
    received: list[list[bytes]] = [[], []]
    got = [[anyio.Event(), anyio.Event()] for _ in received]

    async with DeviceTypeServer("example.com", "enc", plugin_dir=short_tmp, cdi_dir=short_tmp / "cdi") as server:
        server.update(first)

        async def watch(index: int) -> None:
            channel = Channel(path=str(server.socket_path))
            try:
                async with channel.request(
                    f"{convert.DEVICE_PLUGIN_SERVICE}/ListAndWatch", Cardinality.UNARY_STREAM, wire.Empty, _Raw
                ) as stream:
                    await stream.send_message(wire.Empty(), end=True)
                    async for data in stream:
                        received[index].append(data)
                        got[index][len(received[index]) - 1].set()
            finally:
                channel.close()

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for index in range(len(received)):
                    tg.start_soon(watch, index)
                for events in got:
                    await events[0].wait()
                server.update(second)
                for events in got:
                    await events[1].wait()
                await server.stop()
    assert received[0] == received[1] == [_betterproto_bytes(first), _betterproto_bytes(second)]
    assert encodes == [200, 200]
