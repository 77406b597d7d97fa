"""Task driver converters: every domain model survives wire → bytes → wire → domain, and the wire's quirks (Go zero
time, msgpack driver config, unknown enum values, missing messages) are handled as documented."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest

from plugin_host._proto.hashicorp.nomad.plugins.drivers import proto as wire
from plugin_host.base.structs import Attribute
from plugin_host.driver import _convert as convert
from plugin_host.driver.api import (
    AllocatedCpuResources,
    AllocatedMemoryResources,
    AllocatedTaskResources,
    Capabilities,
    CpuStats,
    DeviceConfig,
    DnsConfig,
    DriverFingerprint,
    DriverNetwork,
    ExecTaskResult,
    ExitResult,
    FsIsolation,
    HealthState,
    HostsConfig,
    LinuxResources,
    MemoryStats,
    MountConfig,
    MountConfigSupport,
    NetIsolationMode,
    NetworkIsolationSpec,
    NetworkPort,
    NetworkResource,
    PortMapping,
    Resources,
    ResourceUsage,
    TaskConfig,
    TaskEvent,
    TaskHandle,
    TaskResourceUsage,
    TaskState,
    TaskStatus,
)
from plugin_host.errors import PluginProtocolError

MOMENT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

FULL_CONFIG = TaskConfig(
    id="alloc-1/web/abcd",
    name="web",
    job_name="shop",
    job_id="shop-id",
    task_group_name="frontend",
    parent_job_id="parent",
    namespace="default",
    node_name="node-a",
    node_id="node-id",
    alloc_id="alloc-1",
    env={"A": "1", "PATH": "/bin"},
    device_env={"GPU": "0"},
    resources=Resources(
        nomad_resources=AllocatedTaskResources(
            cpu=AllocatedCpuResources(cpu_shares=500),
            memory=AllocatedMemoryResources(memory_mb=256, memory_max_mb=512),
            networks=(
                NetworkResource(
                    device="eth0",
                    cidr="10.0.0.0/24",
                    ip="10.0.0.5",
                    mbits=100,
                    reserved_ports=(NetworkPort(label="http", value=8080),),
                    dynamic_ports=(NetworkPort(label="admin", value=23456),),
                ),
            ),
        ),
        linux_resources=LinuxResources(
            cpu_period=100000,
            cpu_quota=50000,
            cpu_shares=512,
            memory_limit_bytes=256 * 2**20,
            oom_score_adj=5,
            cpuset_cpus="0-1",
            cpuset_cgroup_path="/sys/fs/cgroup/x",
            percent_ticks=0.25,
        ),
        ports=(PortMapping(label="http", value=8080, to=80, host_ip="10.0.0.5"),),
    ),
    devices=(DeviceConfig(task_path="/dev/x", host_path="/dev/y", permissions="rw"),),
    mounts=(
        MountConfig(
            task_path="/data",
            host_path="/srv/data",
            readonly=True,
            propagation_mode="private",
            selinux_label="z",
            request_name="vol",
        ),
    ),
    user="nobody",
    alloc_dir="/var/nomad/alloc/alloc-1",
    driver_config={"image": "debian.qcow2", "cmds": ["a", "b"], "nested": {"n": 1}, "blob": b"\x00\xff", "f": 1.5},
    stdout_path="/logs/out",
    stderr_path="/logs/err",
    network_isolation=NetworkIsolationSpec(
        mode=NetIsolationMode.GROUP,
        path="/var/run/netns/x",
        labels={"l": "v"},
        hosts_config=HostsConfig(hostname="web", address="10.0.0.5"),
    ),
    dns=DnsConfig(servers=("1.1.1.1",), searches=("svc",), options=("ndots:2",)),
)

USAGE = ResourceUsage(
    memory_stats=MemoryStats(
        rss=1, cache=2, swap=3, usage=4, max_usage=5, kernel_usage=6, kernel_max_usage=7, measured=("RSS", "Swap")
    ),
    cpu_stats=CpuStats(
        system_mode=1.5,
        user_mode=2.5,
        total_ticks=3.5,
        throttled_periods=4,
        throttled_time=5,
        percent=4.0,
        measured=("System Mode", "Percent"),
    ),
)


def through_bytes(message: Any) -> Any:
    """Serialise and parse again, as the wire does."""
    return type(message)().parse(bytes(message))


ROUND_TRIPS: list[tuple[str, Any, Any, Any]] = [
    ("minimal task config", TaskConfig(id="t", name="n"), convert.task_config_to_wire, convert.task_config_from_wire),
    ("full task config", FULL_CONFIG, convert.task_config_to_wire, convert.task_config_from_wire),
    (
        "task handle",
        TaskHandle(version=3, config=FULL_CONFIG, state=TaskState.RUNNING, driver_state=b"\x00state\xff"),
        convert.task_handle_to_wire,
        convert.task_handle_from_wire,
    ),
    (
        "fingerprint",
        DriverFingerprint(
            attributes={"driver.x": Attribute(bool_val=True), "driver.x.version": Attribute(string_val="1.0")},
            health=HealthState.UNHEALTHY,
            health_description="libvirt down",
        ),
        convert.fingerprint_to_wire,
        convert.fingerprint_from_wire,
    ),
    ("fingerprint error", DriverFingerprint(error="boom"), convert.fingerprint_to_wire, convert.fingerprint_from_wire),
    (
        "capabilities",
        Capabilities(
            send_signals=True,
            exec=True,
            fs_isolation=FsIsolation.IMAGE,
            network_isolation_modes=(NetIsolationMode.HOST, NetIsolationMode.TASK, NetIsolationMode.NONE),
            must_init_network=True,
            mount_configs=MountConfigSupport.NONE,
            disable_log_collection=True,
            dynamic_workload_users=True,
        ),
        lambda caps: wire.CapabilitiesResponse(capabilities=convert.capabilities_to_wire(caps)),
        convert.capabilities_from_wire,
    ),
    (
        "exit result with error",
        ExitResult(exit_code=137, signal=9, oom_killed=True, err="crashed"),
        convert.wait_response_to_wire,
        convert.wait_response_from_wire,
    ),
    (
        "running status",
        TaskStatus(id="t", name="n", state=TaskState.RUNNING, started_at=MOMENT, driver_attributes={"pid": "7"}),
        convert.inspect_response_to_wire,
        convert.inspect_response_from_wire,
    ),
    (
        "exited status with network",
        TaskStatus(
            id="t",
            name="n",
            state=TaskState.EXITED,
            started_at=MOMENT,
            completed_at=MOMENT,
            exit_result=ExitResult(exit_code=3),
            network_override=DriverNetwork(port_map={"http": 80}, ip="10.1.1.1", auto_advertise=True),
        ),
        convert.inspect_response_to_wire,
        convert.inspect_response_from_wire,
    ),
    (
        "stats",
        TaskResourceUsage(resource_usage=USAGE, timestamp=1_715_000_000_123_456_000, pids={"42": USAGE}),
        lambda usage: convert.task_stats_to_wire("t", usage),
        convert.task_stats_from_wire,
    ),
    (
        "event",
        TaskEvent(task_id="t", task_name="n", alloc_id="a", timestamp=MOMENT, message="hi", annotations={"k": "v"}),
        convert.task_event_to_wire,
        convert.task_event_from_wire,
    ),
    (
        "exec result",
        ExecTaskResult(stdout=b"out\xff", stderr=b"err", exit_result=ExitResult(exit_code=1)),
        convert.exec_response_to_wire,
        convert.exec_response_from_wire,
    ),
]


@pytest.mark.parametrize(("what", "value", "to_wire", "from_wire"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_models_round_trip_through_wire_bytes(what: str, value: Any, to_wire: Any, from_wire: Any) -> None:
    """Domain → wire → bytes → wire → domain gives back an equal model."""
    assert from_wire(through_bytes(to_wire(value))) == value


def test_start_response_carries_handle_and_optional_network() -> None:
    """StartTaskResponse round trips the handle with and without a network override."""
    handle = TaskHandle(version=1, config=TaskConfig(id="t", name="n"), state=TaskState.RUNNING)
    network = DriverNetwork(port_map={"a": 1}, ip="1.2.3.4")
    for net in (None, network):
        message = through_bytes(convert.start_response_to_wire(handle, net))
        assert convert.start_response_from_wire(message) == (handle, net)


def test_nomads_null_attributes_are_unset_keys() -> None:
    """Nomad encodes a task's hclspec-decoded config with cty's msgpack: every attribute is there, nil where unset.
    Those nils arrive as absent keys (in nested blocks too), so a driver sees only what the job set."""
    payload = msgpack.packb(
        {"command": "sh", "args": None, "os": None, "nets": [{"bridge": {"name": "br0", "ports": None}}]},
        use_bin_type=True,
    )
    assert convert.driver_config_from_wire(payload) == {"command": "sh", "nets": [{"bridge": {"name": "br0"}}]}


def test_driver_config_is_msgpack_on_the_wire() -> None:
    """The driver config travels as a msgpack map (str as str, bytes as bin), as Nomad encodes it."""
    message = convert.task_config_to_wire(TaskConfig(id="t", name="n", driver_config={"a": "b", "c": b"d"}))
    assert msgpack.unpackb(message.msgpack_driver_config, raw=False) == {"a": "b", "c": b"d"}


@pytest.mark.parametrize(
    ("payload", "match"),
    [(b"\xc1", "do not decode as msgpack"), (msgpack.packb([1, 2]), "decodes to a list; expected a map")],
)
def test_undecodable_driver_config_is_a_protocol_error(payload: bytes, match: str) -> None:
    """A driver config that is not a msgpack map raises PluginProtocolError saying what it was."""
    with pytest.raises(PluginProtocolError, match=match):
        convert.driver_config_from_wire(payload)


def test_unset_moments_travel_as_go_zero_time_and_come_back_as_none() -> None:
    """None is sent as 0001-01-01T00:00:00Z (Nomad's Go client needs a timestamp); zero and unset read as None."""
    message = convert.inspect_response_to_wire(TaskStatus(id="t", name="n", state=TaskState.RUNNING))
    assert message.task.completed_at == convert.GO_ZERO_TIME
    assert convert.moment_from_wire(through_bytes(message).task.completed_at) is None
    assert convert.moment_from_wire(wire.TaskStatus().started_at) is None


@pytest.mark.parametrize(
    ("message", "reader", "match"),
    [
        (wire.TaskHandle(version=1), convert.task_handle_from_wire, "no task config"),
        (wire.InspectTaskResponse(), convert.inspect_response_from_wire, "no task status"),
        (wire.TaskStatsResponse(), convert.task_stats_from_wire, "no stats"),
        (
            wire.TaskHandle(config=wire.TaskConfig(id="t"), state=9),
            convert.task_handle_from_wire,
            r"TaskHandle.state: unknown value 9",
        ),
    ],
)
def test_incomplete_or_unknown_wire_messages_are_protocol_errors(message: Any, reader: Any, match: str) -> None:
    """Messages missing a required part, or with an unknown enum value, raise PluginProtocolError naming it."""
    with pytest.raises(PluginProtocolError, match=match):
        reader(message)


def test_stored_handle_bytes_round_trip_and_garbage_is_refused() -> None:
    """The state file's handle bytes decode to the same handle; garbage raises PluginProtocolError."""
    handle = TaskHandle(version=2, config=FULL_CONFIG, state=TaskState.EXITED, driver_state=b"\x01")
    assert convert.task_handle_from_bytes(convert.task_handle_to_bytes(handle)) == handle
    with pytest.raises(PluginProtocolError, match="stored TaskHandle"):
        convert.task_handle_from_bytes(b"\xff\xff\xff")


def test_missing_capabilities_mean_none_and_out_of_range_ports_are_refused() -> None:
    """No capabilities message reads as Capabilities(); a port beyond int32 is refused, as Nomad's server does."""
    assert convert.capabilities_from_wire(wire.CapabilitiesResponse()) == Capabilities()
    with pytest.raises(PluginProtocolError, match=r"port_map\['x'\] = 4294967296"):
        convert.driver_network_to_wire(DriverNetwork(port_map={"x": 2**32}))
