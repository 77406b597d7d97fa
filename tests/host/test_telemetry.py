"""Prometheus metrics (``telemetry {}``): a running host scraped over real TCP, the endpoint's HTTP, the config."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from plugin_host import PluginConnectionInfo, PluginHost, PluginInfo, __version__
from plugin_host.errors import ConfigError, PluginRPCError
from plugin_host.host_config import HostConfig
from plugin_host.kubelet.api import AllocateRequest, ContainerAllocateRequest
from plugin_host.telemetry import Telemetry
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio

WAIT = 10.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _http(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; the status, headers (lower-case names) and body of the reply."""
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(request)
        data = b""
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status_line.split(" ")[1]), headers, body


async def _scrape(port: int, host: str = "127.0.0.1") -> Samples:
    status, headers, body = await _http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", host)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def _scrape_until(port: int, condition: Callable[[Samples], bool]) -> Samples:
    with anyio.fail_after(WAIT):
        while True:
            samples = await _scrape(port)
            if condition(samples):
                return samples
            await anyio.sleep(0.02)


@pytest.fixture
def devices_dir(short_tmp: Path) -> Path:
    path = short_tmp / "devices"
    path.mkdir()
    (path / "dev0").write_text("")
    (path / "dev0").chmod(0o644)
    (path / "bad").write_text("")
    (path / "bad").chmod(0o777)  # fs-device's default unhealthy_perm
    return path


def _config(short_tmp: Path, devices_dir: Path, port: int, blocks: str = "") -> HostConfig:
    path = short_tmp / "host.hcl"
    path.write_text(
        f'state_dir = "{short_tmp / "st"}"\n'
        f'plugin "fs-device" {{\n  config {{\n    dir = "{devices_dir}"\n    list_period = "20ms"\n  }}\n}}\n'
        f'telemetry {{\n  prometheus_listen = "127.0.0.1:{port}"\n}}\n' + blocks
    )
    return HostConfig.from_hcl_file(path)


async def test_a_running_host_exposes_registry_device_and_csi_metrics(short_tmp: Path, devices_dir: Path) -> None:
    """Scraping a running host: fs-device's devices by health, its state, registry commits counted after a
    register, and a CSI plugin whose socket is missing shows as unhealthy with its failed RPCs counted."""
    port = _free_port()
    config = _config(short_tmp, devices_dir, port)
    async with PluginHost(config) as host:
        assert host.telemetry is not None
        assert host.telemetry.urls == (f"http://127.0.0.1:{port}/metrics",)
        samples = await _scrape_until(port, lambda s: any(k[0] == "plugin_host_devices" for k in s))
        [group] = host.devices.snapshot().groups
        assert _value(samples, "plugin_host_devices", plugin="fs-device", group=group.id, healthy="true") == 1
        assert _value(samples, "plugin_host_devices", plugin="fs-device", group=group.id, healthy="false") == 1
        assert _value(samples, "plugin_host_device_plugin_state", plugin="fs-device", state="running") == 1
        assert _value(samples, "plugin_host_device_plugin_state", plugin="fs-device", state="restarting") == 0
        assert _value(samples, "plugin_host_device_plugin_restarts_total", plugin="fs-device") == 0
        assert _value(samples, "plugin_host_info", version=__version__) == 1
        # fs-device's own registration at start was one committed event.
        registered = _value(samples, "plugin_host_registry_events_total", type="device", event_type="registered")
        assert registered == 1
        commits = _value(samples, "plugin_host_registry_commit_seconds_count")
        assert commits is not None
        assert commits >= 1

        await host.registry.register_plugin(
            PluginInfo(
                name="hostpath.csi.example",
                type="csi-node",
                alloc_id="a1",
                connection_info=PluginConnectionInfo(socket_path=str(short_tmp / "missing.sock")),
            )
        )
        samples = await _scrape_until(
            port,
            lambda s: (
                _value(s, "plugin_host_csi_plugin_healthy", type="csi-node", plugin="hostpath.csi.example") == 0
                and (_value(s, "plugin_host_csi_rpcs_total", rpc="GetPluginInfo", code="UNAVAILABLE") or 0) >= 1
            ),
        )
        assert _value(samples, "plugin_host_registry_events_total", type="csi-node", event_type="registered") == 1
        assert _value(samples, "plugin_host_registry_commit_seconds_count") == commits + 1
        assert _value(samples, "plugin_host_registry_commit_batch_size_count") == commits + 1
        assert (_value(samples, "plugin_host_csi_rpc_seconds_count", rpc="GetPluginInfo") or 0) >= 1
        # The host's own subscriptions (CSI manager, device reconcile) are live registry subscribers.
        assert (_value(samples, "plugin_host_registry_subscribers", type="csi-node") or 0) >= 1
        assert _value(samples, "plugin_host_registry_subscribers_dropped_total", type="csi-node") is None

        status = await host.status()
        assert status.metrics_urls == (f"http://127.0.0.1:{port}/metrics",)
    # Stopped: the port is closed.
    with pytest.raises(OSError, match=r"connect|refused"):
        await anyio.connect_tcp("127.0.0.1", port)


async def test_kubelet_allocate_is_timed_and_counted_by_code(short_tmp: Path, devices_dir: Path) -> None:
    """With kubelet {}, an Allocate that succeeds and one kubelet gets INVALID_ARGUMENT for are both counted, the
    first with its latency; the ListAndWatch stream is counted once it ends."""
    port = _free_port()
    plugin_dir = short_tmp / "dp"
    resource = "example.com/nomad-file-mock"
    config = _config(
        short_tmp, devices_dir, port, f'kubelet {{\n  plugin_dir = "{plugin_dir}"\n  namespace = "example.com"\n}}\n'
    )
    async with FakeKubelet(plugin_dir) as kubelet, PluginHost(config) as host:
        assert host.kubelet_export is not None
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(resource, lambda devices: "dev0" in devices)
        await kubelet.allocate(resource, ["dev0"])
        unknown = AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=("no-such-device",)),))
        with pytest.raises(PluginRPCError, match="INVALID_ARGUMENT"):
            await kubelet.raw_allocate(resource, unknown)
        samples = await _scrape(port)
        assert _value(samples, "plugin_host_kubelet_rpcs_total", rpc="Allocate", code="OK") == 1
        assert _value(samples, "plugin_host_kubelet_rpcs_total", rpc="Allocate", code="INVALID_ARGUMENT") == 1
        assert _value(samples, "plugin_host_kubelet_rpc_seconds_count", rpc="Allocate") == 2
        assert _value(samples, "plugin_host_kubelet_rpc_seconds_count", rpc="ListAndWatch") is None


async def test_the_endpoint_speaks_just_enough_http() -> None:
    """Only GET/HEAD /metrics: other paths 404, other methods 405, garbage 400, OpenMetrics when asked for, and a
    client that sends nothing does not hold up a scrape."""
    async with Telemetry(("127.0.0.1", 0)) as telemetry:
        [(_, port)] = telemetry.addresses
        async with await anyio.connect_tcp("127.0.0.1", port):  # a silent client, left open meanwhile
            status, _, body = await _http(port, b"GET /other HTTP/1.1\r\n\r\n")
            assert status == 404
            status, headers, _ = await _http(port, b"POST /metrics HTTP/1.1\r\n\r\n")
            assert (status, headers["allow"]) == (405, "GET, HEAD")
            status, _, _ = await _http(port, b"\x00\x01garbage\r\n\r\n")
            assert status == 400
            status, headers, body = await _http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
            assert (status, body) == (200, b"")
            assert int(headers["content-length"]) > 0
            status, headers, body = await _http(
                port, b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n"
            )
            assert status == 200
            assert headers["content-type"].startswith("application/openmetrics-text")
            assert body.endswith(b"# EOF\n")


async def test_two_telemetry_objects_in_one_process_do_not_clash() -> None:
    """Each Telemetry has its own registry: same metric names twice, separate values, nothing in the global one."""
    async with Telemetry(("127.0.0.1", 0)) as first, Telemetry(("127.0.0.1", 0)) as second:
        first.metrics.subscriber_dropped("device")
        first.metrics.subscriber_dropped("device")
        second.metrics.rpc("csi", "Probe", "OK", 0.001)
        [(_, first_port)] = first.addresses
        [(_, second_port)] = second.addresses
        one, two = await _scrape(first_port), await _scrape(second_port)
    assert _value(one, "plugin_host_registry_subscribers_dropped_total", type="device") == 2
    assert _value(two, "plugin_host_registry_subscribers_dropped_total", type="device") is None
    assert _value(two, "plugin_host_csi_rpcs_total", rpc="Probe", code="OK") == 1
    assert _value(one, "plugin_host_csi_rpcs_total", rpc="Probe", code="OK") is None
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("plugin_host")]


async def test_a_busy_port_is_a_config_error_naming_the_address() -> None:
    """Binding an address another socket holds fails the Telemetry (and so the host) with a ConfigError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"telemetry: cannot listen on 127\.0\.0\.1:{port}"):
            async with Telemetry(f"127.0.0.1:{port}"):
                pass


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("9464", "no port given"),
        (":9464", "the host is empty"),
        ("127.0.0.1:0", "port 0 is out of range"),
        ("127.0.0.1:65536", "port 65536 is out of range"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("::1:9464", r"must be written \[address\]:port"),
        ("[nope]:9464", "is not an IPv6 address"),
        ("bad_host:9464", "neither an IP address nor a host name"),
        ("127.0.0.1\x00:9464", "NUL byte"),
    ],
)
def test_a_bad_listen_address_is_a_config_error_naming_the_key(listen: str, problem: str) -> None:
    """Every malformed prometheus_listen fails at load time, naming telemetry.prometheus_listen and the problem."""
    with pytest.raises(ConfigError, match=r"telemetry\.prometheus_listen") as caught:
        HostConfig.from_mapping({"telemetry": {"prometheus_listen": listen}})
    assert caught.match(problem)


def test_the_telemetry_block_parses_from_hcl_and_refuses_unknown_keys(tmp_path: Path) -> None:
    """telemetry {} loads from HCL (IPv6 and host names too); an unknown key names the keys allowed there."""
    path = tmp_path / "host.hcl"
    path.write_text('telemetry {\n  prometheus_listen = "[::1]:9464"\n}\n')
    config = HostConfig.from_hcl_file(path)
    assert config.telemetry is not None
    assert config.telemetry.prometheus_listen == "[::1]:9464"
    assert HostConfig.from_mapping({}).telemetry is None
    path.write_text('telemetry {\n  prometheus_listen = "localhost:9464"\n  prometheus_metrics = true\n}\n')
    with pytest.raises(ConfigError, match=r"telemetry: unknown key 'prometheus_metrics'; allowed keys: prometheus_li"):
        HostConfig.from_hcl_file(path)
    path.write_text("telemetry {}\n")
    with pytest.raises(ConfigError, match=r"telemetry\.prometheus_listen"):
        HostConfig.from_hcl_file(path)


def test_without_telemetry_prometheus_client_is_never_imported(short_tmp: Path, devices_dir: Path) -> None:
    """A host run without telemetry {} (fs-device, a CSI registration and its failing probe) never loads
    prometheus_client."""
    mapping = {"state_dir": str(short_tmp / "st"), "plugins": {"fs-device": {"config": {"dir": str(devices_dir)}}}}
    script = textwrap.dedent(
        f"""
        import sys
        import anyio
        from plugin_host import PluginConnectionInfo, PluginHost, PluginInfo
        from plugin_host.host_config import HostConfig
        from plugin_host import cli  # the CLI's imports too

        async def main():
            config = HostConfig.from_mapping({mapping!r})
            async with PluginHost(config) as host:
                where = PluginConnectionInfo(socket_path="/nonexistent.sock")
                await host.registry.register_plugin(
                    PluginInfo(name="x", type="csi-node", alloc_id="a", connection_info=where)
                )
                await anyio.sleep(0.2)  # the CSI manager's first, failing calls
                assert host.telemetry is None
                assert (await host.status()).metrics_urls == ()

        anyio.run(main)
        loaded = sorted(name for name in sys.modules if name.startswith(("prometheus_client", "plugin_host.telemetry")))
        print(loaded)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
