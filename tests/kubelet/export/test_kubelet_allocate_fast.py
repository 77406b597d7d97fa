"""The default Allocate's fast path: hand-coded request and response (same message as betterproto's and the model
path's), and CDI spec files left untouched by an Allocate whose spec did not change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest
from helpers.kubelet import RESOURCE, WAIT, cdi_gpu, gpu, kubelet_and_server

from plugin_host._proto import v1beta1 as wire
from plugin_host.kubelet import (
    AllocateRequest,
    AllocateResponse,
    CdiContainerEdits,
    CdiDevice,
    CdiSpec,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    DeviceInfo,
    KubeletDeviceSpec,
    KubeletMount,
)
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet.export import _cdi_writer
from plugin_host.kubelet.export._allocate_codec import decode_allocate_request, encode_allocate_response
from plugin_host.kubelet.export._service import DeviceState, DeviceTypeService, Hooks

pytestmark = pytest.mark.anyio


# --- the codec ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "containers",
    [(), ((),), (("a",),), (("dev0", "dev1"), ("é-ü", "x" * 300)), tuple((f"d{i}",) for i in range(200))],
)
def test_the_request_decodes_to_the_ids_betterproto_encoded(containers: tuple[tuple[str, ...], ...]) -> None:
    message = wire.AllocateRequest(
        container_requests=[wire.ContainerAllocateRequest(devices_ids=list(ids)) for ids in containers]
    )
    assert decode_allocate_request(bytes(message)) == containers


def test_unknown_request_fields_are_skipped_and_bad_bytes_raise_value_error() -> None:
    known = bytes(wire.AllocateRequest(container_requests=[wire.ContainerAllocateRequest(devices_ids=["a"])]))
    # a varint field 2, a fixed64 field 3 and a fixed32 field 4 around the known field
    assert decode_allocate_request(b"\x10\x05" + known + b"\x19" + bytes(8) + b"\x25" + bytes(4)) == (("a",),)
    for bad in (known[:-1], b"\x0a\x03\x0a\x02\xff\xfe", b"\x0b", b"\x08\xff"):
        with pytest.raises(ValueError, match=r"truncated|unsupported wire type|utf-8|varint"):
            decode_allocate_request(bad)


def test_a_response_model_encodes_to_the_message_betterproto_encodes() -> None:
    response = AllocateResponse(
        container_responses=(
            ContainerAllocateResponse(
                envs={"A": "1", "B": ""},
                mounts=(KubeletMount(container_path="/c", host_path="/h", read_only=True),),
                devices=(KubeletDeviceSpec(container_path="/dev/x", host_path="/dev/y", permissions="rwm"),),
                annotations={"k": "v"},
                cdi_devices=("example.com/gpu=card0",),
            ),
            ContainerAllocateResponse(),
        )
    )
    decoded = wire.AllocateResponse().parse(encode_allocate_response(response))
    assert decoded == convert.allocate_response_to_wire(response)
    assert convert.allocate_response_from_wire(decoded) == response


async def test_the_fast_default_answers_what_the_model_default_answers(tmp_path: Path) -> None:
    """Single and several devices per container (shared mounts deduplicated, envs merged, CDI names once)."""
    shared = cdi_gpu(0, "shared").cdi_spec
    devices = {
        "g0": gpu(0),
        "g1": gpu(1),
        "c0": gpu(3, cdi_spec=shared),
        "c1": gpu(4, cdi_spec=shared, topology=(0,)),
        "plain": DeviceInfo(),
    }
    state = DeviceState()
    state.update(devices)
    service = DeviceTypeService(RESOURCE, state, Hooks(), tmp_path / "cdi")
    for containers in [(("g0",),), (("g0", "g1"),), (("c0", "c1", "g0"), ("plain",)), (("g1", "g1"),)]:
        request = AllocateRequest(
            container_requests=tuple(ContainerAllocateRequest(devices_ids=ids) for ids in containers)
        )
        fast = wire.AllocateResponse().parse(await service._default_allocate_encoded(containers))
        assert convert.allocate_response_from_wire(fast) == await service._default_allocate(request)


# --- CDI spec files -----------------------------------------------------------------------------------------------


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def _spec(device: str, env: str) -> DeviceInfo:
    return DeviceInfo(
        cdi_spec=CdiSpec(
            kind="example.com/gpu", devices=(CdiDevice(name=device, container_edits=CdiContainerEdits(env=(env,))),)
        )
    )


async def test_an_allocate_whose_cdi_spec_is_unchanged_writes_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated Allocates leave the spec file as it is (same inode and mtime, no write, no fsync), also after an
    update that hands over an equal spec; a changed spec rewrites it, a new device gets its own file."""
    writes: list[str] = []
    real_write = _cdi_writer._write

    def counting_write(path: Path, content: bytes) -> tuple[int, int, int]:
        writes.append(path.name)
        return real_write(path, content)

    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(_cdi_writer, "_write", counting_write)

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    cdi_dir = short_tmp / "cdi"
    path = cdi_dir / "example.com-gpu-card0.yaml"
    async with kubelet_and_server(short_tmp, {"g0": _spec("card0", "V=1")}, cdi_dir=cdi_dir) as (kubelet, server):
        await kubelet.allocate(RESOURCE, ["g0"])
        assert writes == ["example.com-gpu-card0.yaml"]
        first = _identity(path)
        fsyncs.clear()
        for _ in range(20):
            response = await kubelet.allocate(RESOURCE, ["g0"])
            assert response.cdi_devices == ("example.com/gpu=card0",)
        server.update({"g0": _spec("card0", "V=1")})  # an equal spec, another object
        for _ in range(5):
            await kubelet.allocate(RESOURCE, ["g0"])
        assert _identity(path) == first
        assert writes == ["example.com-gpu-card0.yaml"]
        assert fsyncs == []

        server.update({"g0": _spec("card0", "V=2"), "g1": _spec("card1", "W=1")})
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(RESOURCE, lambda devices: "g1" in devices)
        await kubelet.allocate(RESOURCE, ["g0"])
        await kubelet.allocate(RESOURCE, ["g1"])
        assert _identity(path) != first
        assert json.loads(path.read_text())["devices"][0]["containerEdits"] == {"env": ["V=2"]}
        assert sorted(writes) == sorted(["example.com-gpu-card0.yaml"] * 2 + ["example.com-gpu-card1.yaml"])

        path.unlink()  # removed behind our back: the next Allocate puts it back
        await kubelet.allocate(RESOURCE, ["g0"])
        assert json.loads(path.read_text())["devices"][0]["containerEdits"] == {"env": ["V=2"]}
