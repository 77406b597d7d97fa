"""Hostile or broken Kubernetes device plugins against the host's kubelet registration server: oversized Register
fields, a registration socket that cannot be bound, a ListAndWatch stream that ends before its first message."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from plugin_host import PluginHost
from plugin_host.admin import query_status
from plugin_host.errors import ConfigError
from plugin_host.host_config import HostConfig
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer
from plugin_host.registry import PLUGIN_TYPE_DEVICE, Registry
from plugin_host.testing.device_plugin import ScriptedPlugin, register, serve_plugin

pytestmark = pytest.mark.anyio

WAIT = 10.0
RESOURCE = "example.com/widget"
BIG = 300 * 1024
# A directory no process can create a socket in, whoever runs the tests (root included).
UNBINDABLE_DIR = "/proc/self"


@pytest.fixture
def plugin_dir(short_tmp: Path) -> Path:
    return short_tmp / "dp"


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("resource_name", {"resource_name": "example.com/" + "a" * (BIG - 12)}),
        ("endpoint", {"endpoint": "e" * BIG}),
        ("version", {"version": "v" * BIG}),
    ],
)
async def test_an_oversized_register_field_is_refused_by_name_and_length(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture, field: str, fields: dict[str, str]
) -> None:
    """A 300 KB Register field is refused naming the field and its length (not its value), logged once and short;
    nothing is dialled and the server takes a good plugin afterwards (echoing it froze the loop in hpack)."""
    plugin = ScriptedPlugin()
    request = {"endpoint": "p.sock", "resource_name": RESOURCE, "version": "v1beta1", **fields}
    caplog.set_level(logging.INFO, logger="plugin_host.kubelet.host.registration_server")
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        serve_plugin(plugin, plugin_dir / "p.sock"),
    ):
        with anyio.fail_after(WAIT), pytest.raises(GRPCError) as caught:
            await register(server.socket_path, **request)
        assert caught.value.status is Status.UNKNOWN
        assert caught.value.message == f"{field} is {BIG} bytes, longer than the 4096 allowed"
        records = [r for r in caplog.records if "registration request" in r.getMessage()]
        assert len(records) == 1
        assert len(records[0].getMessage()) < 1000
        assert plugin.options_calls == 0
        with anyio.fail_after(WAIT):
            await register(server.socket_path, endpoint="p.sock", resource_name=RESOURCE)
        assert [p.name for p in await registry.list_plugins(PLUGIN_TYPE_DEVICE)] == [RESOURCE]


async def test_a_long_invalid_resource_name_is_echoed_truncated_in_kubelets_text(plugin_dir: Path) -> None:
    """A 4,000-character invalid resource name gets kubelet's "the ResourceName ... is invalid" with the name cut."""
    name = "x" * 4000
    async with Registry() as registry, KubeletRegistrationServer(plugin_dir, registry) as server:
        with anyio.fail_after(WAIT), pytest.raises(GRPCError) as caught:
            await register(server.socket_path, endpoint="p.sock", resource_name=name)
    message = caught.value.message or ""
    assert message.startswith('the ResourceName "' + "x" * 200 + "... (3800 more characters)")
    assert message.endswith(" is invalid")


async def test_an_unbindable_registration_socket_is_one_config_error_naming_the_path() -> None:
    """A plugin_dir where the socket cannot be bound fails the server's start with one ConfigError naming the
    socket path (it left an entered task group behind: a cancel-scope RuntimeError on every enclosing scope)."""
    async with Registry() as registry:
        with pytest.raises(ConfigError, match=r"kubelet registration socket '/proc/self/kubelet\.sock'"):
            async with KubeletRegistrationServer(UNBINDABLE_DIR, registry):
                pass  # pragma: no cover - the start fails


def _config(short_tmp: Path, plugin_dir: str) -> Path:
    path = short_tmp / "host.hcl"
    path.write_text(f'state_dir = "{short_tmp / "st"}"\nkubelet_server {{\n  plugin_dir = "{plugin_dir}"\n}}\n')
    return path


async def test_the_host_fails_to_start_with_the_same_error(short_tmp: Path) -> None:
    """PluginHost with an unbindable kubelet_server socket raises the ConfigError naming the path."""
    config = HostConfig.from_hcl_file(_config(short_tmp, UNBINDABLE_DIR))
    with pytest.raises(ConfigError, match=r"'/proc/self/kubelet\.sock'"):
        async with PluginHost(config):
            pass  # pragma: no cover - the start fails


def test_the_cli_prints_one_line_and_exits_2(short_tmp: Path) -> None:
    """`plugin-host run` with an unbindable kubelet_server socket prints one line naming the path and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "plugin_host", "run", "--config", os.fspath(_config(short_tmp, UNBINDABLE_DIR))],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("plugin-host: cannot serve the kubelet registration socket '/proc/self/kubelet.sock'")


async def test_a_stream_ended_before_its_first_list_shows_disconnected_in_the_admin_status(short_tmp: Path) -> None:
    """A kubelet-hosted plugin whose ListAndWatch stream ends before any device list is `disconnected` in the
    host's admin status with the reason, at once (it stayed `starting` without an error for 5 minutes)."""
    plugin_dir = short_tmp / "dp"
    config = HostConfig.from_hcl_file(_config(short_tmp, os.fspath(plugin_dir)))
    plugin = ScriptedPlugin()
    plugin.end_streams()
    async with PluginHost(config) as host, serve_plugin(plugin, plugin_dir / "p.sock"):
        server = host.kubelet_server
        assert server is not None
        with anyio.fail_after(WAIT):
            await register(server.socket_path, endpoint="p.sock", resource_name=RESOURCE)
            await plugin.stream_closed.wait()
            await anyio.wait_all_tasks_blocked()
            status = await query_status(config.admin_socket_path)
        (plugin_status,) = [p for p in status.plugins if p.name == RESOURCE]
    assert plugin_status.kubelet_hosted
    assert plugin_status.state == "disconnected"
    assert plugin_status.last_error == (
        "the device plugin is disconnected: its ListAndWatch stream ended before the first device list"
    )
