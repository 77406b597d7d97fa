"""The fake kubelet itself is strict: Register is validated and dialled back the way kubelet does it."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from grpclib.client import Channel

from plugin_host._grpc_client import unary_call
from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import PluginRPCError
from plugin_host.kubelet import DeviceInfo, DeviceTypeServer, RegisterRequest
from plugin_host.kubelet import _convert as convert
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio


async def _register(kubelet: FakeKubelet, request: RegisterRequest) -> None:
    channel = Channel(path=str(kubelet.socket_path))
    try:
        await unary_call(
            channel,
            "Register",
            f"{convert.REGISTRATION_SERVICE}/Register",
            convert.register_request_to_wire(request),
            wire.Empty,
            where="kubelet",
            timeout=5.0,
        )
    finally:
        channel.close()


@pytest.mark.parametrize(
    ("version", "resource", "endpoint", "message"),
    [
        (
            "v1alpha",
            "example.com/gpu",
            "p.sock",
            'requested API version "v1alpha" is not supported by kubelet. Supported version is ["v1beta1"]',
        ),
        ("v1beta1", "foo", "p.sock", 'the ResourceName "foo" is invalid'),
        ("v1beta1", "kubernetes.io/foo", "p.sock", 'the ResourceName "kubernetes.io/foo" is invalid'),
        ("v1beta1", "x.com/" + "a" * 64, "p.sock", f'the ResourceName "x.com/{"a" * 64}" is invalid'),
        ("v1beta1", "example.com/gpu", "../p.sock", 'the endpoint "../p.sock" is invalid'),
        ("v1beta1", "example.com/gpu", "sub/p.sock", 'the endpoint "sub/p.sock" is invalid'),
        ("v1beta1", "example.com/gpu", "missing.sock", "failed to dial device plugin"),
    ],
)
async def test_register_is_refused_like_kubelet_does(
    short_tmp: Path, version: str, resource: str, endpoint: str, message: str
) -> None:
    """Bad Register input is refused with kubelet's message (status UNKNOWN); nothing is registered."""
    async with FakeKubelet(short_tmp, dial_timeout=1.0) as kubelet:
        request = RegisterRequest(version=version, endpoint=endpoint, resource_name=resource)
        with pytest.raises(PluginRPCError) as caught:
            await _register(kubelet, request)
        assert caught.value.code == "UNKNOWN"
        assert caught.value.rpc_message is not None
        assert caught.value.rpc_message.startswith(message)
        assert kubelet.registrations == []
        assert kubelet.rejections == [caught.value.rpc_message]


async def test_start_removes_sockets_but_keeps_other_files(short_tmp: Path) -> None:
    """Like kubelet's start, only sockets in the plugin directory are deleted (a checkpoint file stays)."""
    (short_tmp / "kubelet_internal_checkpoint").write_text("{}")
    async with DeviceTypeServer("example.com", "gpu", plugin_dir=short_tmp, cdi_dir=short_tmp / "cdi") as server:
        server.update({"g0": DeviceInfo()})
        async with FakeKubelet(short_tmp) as kubelet:
            with anyio.fail_after(5.0):
                await kubelet.wait_for_devices("example.com/gpu")
            await kubelet.stop()
            await kubelet.start()
            assert (short_tmp / "kubelet_internal_checkpoint").read_text() == "{}"
            with anyio.fail_after(5.0):
                await kubelet.wait_for_registration("example.com/gpu", 2)
