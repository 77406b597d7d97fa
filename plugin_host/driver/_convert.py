"""Wire ⇄ domain converters for the task driver API (Nomad's ``plugins/drivers/utils.go``).

Pure functions. Where the wire and the domain differ:

- the task's driver config is a mapping here and msgpack bytes on the wire (``msgpack_driver_config``);
- enums are lower-case strings here (``TaskState.RUNNING``) and proto enums there;
- a moment that is not set (``None``) travels as Go's zero time, 0001-01-01T00:00:00Z, because Nomad's Go client
  refuses a missing timestamp; that moment (or an unset one) comes back as ``None``;
- ``TaskResourceUsage.timestamp`` is Unix nanoseconds here and a ``google.protobuf.Timestamp`` there;
- ``MemoryStats.mapped_file`` has no wire field and is dropped, as Nomad does.

Errors are not part of these messages except where Nomad put them there (``err`` of fingerprints, waits, events).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack

from plugin_host._proto.hashicorp.nomad.plugins.drivers import proto as wire
from plugin_host._text import truncated
from plugin_host.base.convert import attributes_from_wire, attributes_to_wire, on_wire
from plugin_host.config.validation import without_nulls
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

# gRPC path prefix of the Driver service (package hashicorp.nomad.plugins.drivers.proto).
DRIVER_SERVICE = "/hashicorp.nomad.plugins.drivers.proto.Driver"

# Go's zero time.Time, which Nomad sends for "not set".
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HEALTH = {
    HealthState.UNDETECTED: wire.FingerprintResponseHealthState.UNDETECTED,
    HealthState.UNHEALTHY: wire.FingerprintResponseHealthState.UNHEALTHY,
    HealthState.HEALTHY: wire.FingerprintResponseHealthState.HEALTHY,
}
_TASK_STATE = {
    TaskState.UNKNOWN: wire.TaskState.UNKNOWN,
    TaskState.RUNNING: wire.TaskState.RUNNING,
    TaskState.EXITED: wire.TaskState.EXITED,
}
_FS_ISOLATION = {
    FsIsolation.NONE: wire.DriverCapabilitiesFsIsolation.NONE,
    FsIsolation.CHROOT: wire.DriverCapabilitiesFsIsolation.CHROOT,
    FsIsolation.IMAGE: wire.DriverCapabilitiesFsIsolation.IMAGE,
    FsIsolation.UNVEIL: wire.DriverCapabilitiesFsIsolation.UNVEIL,
}
_NET_MODE = {
    NetIsolationMode.HOST: wire.NetworkIsolationSpecNetworkIsolationMode.HOST,
    NetIsolationMode.GROUP: wire.NetworkIsolationSpecNetworkIsolationMode.GROUP,
    NetIsolationMode.TASK: wire.NetworkIsolationSpecNetworkIsolationMode.TASK,
    NetIsolationMode.NONE: wire.NetworkIsolationSpecNetworkIsolationMode.NONE,
}
_MOUNTS = {
    MountConfigSupport.ALL: wire.DriverCapabilitiesMountConfigs.ANY_MOUNTS,
    MountConfigSupport.NONE: wire.DriverCapabilitiesMountConfigs.NO_MOUNTS,
}
_CPU_FIELDS = {
    "System Mode": wire.CpuUsageFields.SYSTEM_MODE,
    "User Mode": wire.CpuUsageFields.USER_MODE,
    "Total Ticks": wire.CpuUsageFields.TOTAL_TICKS,
    "Throttled Periods": wire.CpuUsageFields.THROTTLED_PERIODS,
    "Throttled Time": wire.CpuUsageFields.THROTTLED_TIME,
    "Percent": wire.CpuUsageFields.PERCENT,
}
_MEMORY_FIELDS = {
    "RSS": wire.MemoryUsageFields.RSS,
    "Cache": wire.MemoryUsageFields.CACHE,
    "Swap": wire.MemoryUsageFields.SWAP,
    "Usage": wire.MemoryUsageFields.USAGE,
    "Max Usage": wire.MemoryUsageFields.MAX_USAGE,
    "Kernel Usage": wire.MemoryUsageFields.KERNEL_USAGE,
    "Kernel Max Usage": wire.MemoryUsageFields.KERNEL_MAX_USAGE,
}


def _reverse(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return {int(w): d for d, w in mapping.items()}


_HEALTH_BACK = _reverse(_HEALTH)
_TASK_STATE_BACK = _reverse(_TASK_STATE)
_FS_ISOLATION_BACK = _reverse(_FS_ISOLATION)
_NET_MODE_BACK = _reverse(_NET_MODE)
_MOUNTS_BACK = _reverse(_MOUNTS)
_CPU_FIELDS_BACK = _reverse(_CPU_FIELDS)
_MEMORY_FIELDS_BACK = _reverse(_MEMORY_FIELDS)


def _enum_from_wire(table: Mapping[int, Any], value: Any, what: str) -> Any:
    try:
        return table[int(value)]
    except (KeyError, TypeError, ValueError):
        raise PluginProtocolError(
            f"{what}: unknown value {truncated(value)}, expected one of {sorted(table)}"
        ) from None


# --- time -------------------------------------------------------------------------------------------------------


def moment_to_wire(moment: datetime | None) -> datetime:
    """A moment for a ``google.protobuf.Timestamp``: ``None`` is Go's zero time; naive datetimes are local time."""
    if moment is None:
        return GO_ZERO_TIME
    return moment.astimezone(UTC)


def moment_from_wire(message: Any) -> datetime | None:
    """A wire timestamp → an aware UTC datetime, or ``None`` for an unset timestamp or Go's zero time."""
    # Go sends its zero time for "not set"; betterproto reads an absent timestamp as the Unix epoch.
    if message is None or message <= GO_ZERO_TIME or message == _EPOCH:
        return None
    moment: datetime = message
    return moment.astimezone(UTC)


def seconds_to_wire(seconds: float) -> timedelta:
    """Seconds → ``google.protobuf.Duration``."""
    return timedelta(seconds=seconds)


def seconds_from_wire(duration: Any) -> float:
    """``google.protobuf.Duration`` (unset: zero) → seconds."""
    return float(duration.total_seconds()) if isinstance(duration, timedelta) else 0.0


def nanos_to_moment(nanos: int) -> datetime:
    """Unix nanoseconds → an aware UTC datetime (microsecond precision, as datetime has)."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def moment_to_nanos(moment: datetime) -> int:
    """An aware datetime → Unix nanoseconds."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# --- driver config ----------------------------------------------------------------------------------------------


def driver_config_to_wire(config: Mapping[str, Any]) -> bytes:
    """The task's driver config → msgpack (strings as str, bytes as bin), as Nomad encodes it."""
    packed: bytes = msgpack.packb(dict(config), use_bin_type=True)
    return packed


def driver_config_from_wire(payload: bytes) -> dict[str, Any]:
    """msgpack → the task's driver config; empty bytes are an empty config, anything but a map is an error."""
    if not payload:
        return {}
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise PluginProtocolError(
            f"TaskConfig.msgpack_driver_config: {len(payload)} bytes do not decode as msgpack ({exc})"
        ) from exc
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise PluginProtocolError(
            f"TaskConfig.msgpack_driver_config decodes to a {type(data).__name__}; expected a map with string keys"
        )
    cleaned: dict[str, Any] = without_nulls(data)
    return cleaned


# --- fingerprint and capabilities -------------------------------------------------------------------------------


def fingerprint_to_wire(fingerprint: DriverFingerprint) -> Any:
    """``DriverFingerprint`` → wire ``FingerprintResponse``."""
    return wire.FingerprintResponse(
        attributes=attributes_to_wire(fingerprint.attributes),
        health=_HEALTH[fingerprint.health],
        health_description=fingerprint.health_description,
        err=fingerprint.error or "",
    )


def fingerprint_from_wire(message: Any) -> DriverFingerprint:
    """Wire ``FingerprintResponse`` → ``DriverFingerprint`` (an empty ``err`` is no error)."""
    return DriverFingerprint(
        attributes=attributes_from_wire(message.attributes),
        health=_enum_from_wire(_HEALTH_BACK, message.health, "FingerprintResponse.health"),
        health_description=message.health_description,
        error=message.err or None,
    )


def capabilities_to_wire(caps: Capabilities) -> Any:
    """``Capabilities`` → wire ``DriverCapabilities``."""
    return wire.DriverCapabilities(
        send_signals=caps.send_signals,
        exec=caps.exec,
        fs_isolation=_FS_ISOLATION[caps.fs_isolation],
        network_isolation_modes=[_NET_MODE[mode] for mode in caps.network_isolation_modes],
        must_create_network=caps.must_init_network,
        mount_configs=_MOUNTS[caps.mount_configs],
        disable_log_collection=caps.disable_log_collection,
        dynamic_workload_users=caps.dynamic_workload_users,
    )


def capabilities_from_wire(message: Any) -> Capabilities:
    """Wire ``CapabilitiesResponse`` → ``Capabilities``; no capabilities message means none, as in Nomad."""
    caps = message.capabilities
    if not on_wire(caps):
        return Capabilities()
    return Capabilities(
        send_signals=caps.send_signals,
        exec=caps.exec,
        fs_isolation=_FS_ISOLATION_BACK.get(int(caps.fs_isolation), FsIsolation.NONE),
        network_isolation_modes=tuple(
            _NET_MODE_BACK.get(int(mode), NetIsolationMode.HOST) for mode in caps.network_isolation_modes
        ),
        must_init_network=caps.must_create_network,
        mount_configs=_enum_from_wire(_MOUNTS_BACK, caps.mount_configs, "DriverCapabilities.mount_configs"),
        disable_log_collection=caps.disable_log_collection,
        dynamic_workload_users=caps.dynamic_workload_users,
    )


# --- task config ------------------------------------------------------------------------------------------------


def _ports_to_wire(ports: tuple[NetworkPort, ...]) -> list[Any]:
    return [wire.NetworkPort(label=p.label, value=p.value) for p in ports]


def _ports_from_wire(ports: list[Any]) -> tuple[NetworkPort, ...]:
    return tuple(NetworkPort(label=p.label, value=p.value) for p in ports)


def resources_to_wire(resources: Resources) -> Any:
    """``Resources`` → wire."""
    message = wire.Resources()
    nomad = resources.nomad_resources
    if nomad is not None:
        message.allocated_resources = wire.AllocatedTaskResources(
            cpu=wire.AllocatedCpuResources(cpu_shares=nomad.cpu.cpu_shares),
            memory=wire.AllocatedMemoryResources(
                memory_mb=nomad.memory.memory_mb, memory_max_mb=nomad.memory.memory_max_mb
            ),
            networks=[
                wire.NetworkResource(
                    device=n.device,
                    cidr=n.cidr,
                    ip=n.ip,
                    mbits=n.mbits,
                    reserved_ports=_ports_to_wire(n.reserved_ports),
                    dynamic_ports=_ports_to_wire(n.dynamic_ports),
                )
                for n in nomad.networks
            ],
        )
    linux = resources.linux_resources
    if linux is not None:
        message.linux_resources = wire.LinuxResources(
            cpu_period=linux.cpu_period,
            cpu_quota=linux.cpu_quota,
            cpu_shares=linux.cpu_shares,
            memory_limit_bytes=linux.memory_limit_bytes,
            oom_score_adj=linux.oom_score_adj,
            cpuset_cpus=linux.cpuset_cpus,
            cpuset_cgroup=linux.cpuset_cgroup_path,
            percent_ticks=linux.percent_ticks,
        )
    if resources.ports is not None:
        message.ports = [
            wire.PortMapping(label=p.label, value=p.value, to=p.to, host_ip=p.host_ip) for p in resources.ports
        ]
    return message


def resources_from_wire(message: Any) -> Resources:
    """Wire ``Resources`` → domain; unset parts stay ``None`` (an empty port list is no port mappings)."""
    nomad = None
    allocated = message.allocated_resources
    if on_wire(allocated):
        nomad = AllocatedTaskResources(
            cpu=AllocatedCpuResources(cpu_shares=allocated.cpu.cpu_shares if allocated.cpu else 0),
            memory=AllocatedMemoryResources(
                memory_mb=allocated.memory.memory_mb if allocated.memory else 0,
                memory_max_mb=allocated.memory.memory_max_mb if allocated.memory else 0,
            ),
            networks=tuple(
                NetworkResource(
                    device=n.device,
                    cidr=n.cidr,
                    ip=n.ip,
                    mbits=n.mbits,
                    reserved_ports=_ports_from_wire(n.reserved_ports),
                    dynamic_ports=_ports_from_wire(n.dynamic_ports),
                )
                for n in allocated.networks
            ),
        )
    linux = None
    lr = message.linux_resources
    if on_wire(lr):
        linux = LinuxResources(
            cpu_period=lr.cpu_period,
            cpu_quota=lr.cpu_quota,
            cpu_shares=lr.cpu_shares,
            memory_limit_bytes=lr.memory_limit_bytes,
            oom_score_adj=lr.oom_score_adj,
            cpuset_cpus=lr.cpuset_cpus,
            cpuset_cgroup_path=lr.cpuset_cgroup,
            percent_ticks=lr.percent_ticks,
        )
    ports = (
        tuple(PortMapping(label=p.label, value=p.value, to=p.to, host_ip=p.host_ip) for p in message.ports)
        if message.ports
        else None
    )
    return Resources(nomad_resources=nomad, linux_resources=linux, ports=ports)


def network_isolation_to_wire(spec: NetworkIsolationSpec) -> Any:
    """``NetworkIsolationSpec`` → wire."""
    message = wire.NetworkIsolationSpec(mode=_NET_MODE[spec.mode], path=spec.path, labels=dict(spec.labels))
    if spec.hosts_config is not None:
        message.hosts_config = wire.HostsConfig(hostname=spec.hosts_config.hostname, address=spec.hosts_config.address)
    return message


def network_isolation_from_wire(message: Any) -> NetworkIsolationSpec:
    """Wire ``NetworkIsolationSpec`` → domain."""
    hosts = message.hosts_config
    return NetworkIsolationSpec(
        mode=_NET_MODE_BACK.get(int(message.mode), NetIsolationMode.HOST),
        path=message.path,
        labels=dict(message.labels),
        hosts_config=HostsConfig(hostname=hosts.hostname, address=hosts.address) if on_wire(hosts) else None,
    )


def task_config_to_wire(config: TaskConfig) -> Any:
    """``TaskConfig`` → wire; the driver config becomes msgpack."""
    message = wire.TaskConfig(
        id=config.id,
        name=config.name,
        msgpack_driver_config=driver_config_to_wire(config.driver_config),
        env=dict(config.env),
        device_env=dict(config.device_env),
        mounts=[
            wire.Mount(
                task_path=m.task_path,
                host_path=m.host_path,
                readonly=m.readonly,
                propagation_mode=m.propagation_mode,
                selinux_label=m.selinux_label,
                request_name=m.request_name,
            )
            for m in config.mounts
        ],
        devices=[
            wire.Device(task_path=d.task_path, host_path=d.host_path, cgroup_permissions=d.permissions)
            for d in config.devices
        ],
        user=config.user,
        alloc_dir=config.alloc_dir,
        stdout_path=config.stdout_path,
        stderr_path=config.stderr_path,
        task_group_name=config.task_group_name,
        job_name=config.job_name,
        alloc_id=config.alloc_id,
        job_id=config.job_id,
        namespace=config.namespace,
        node_name=config.node_name,
        node_id=config.node_id,
        parent_job_id=config.parent_job_id,
    )
    if config.resources is not None:
        message.resources = resources_to_wire(config.resources)
    if config.network_isolation is not None:
        message.network_isolation_spec = network_isolation_to_wire(config.network_isolation)
    if config.dns is not None:
        message.dns = wire.DnsConfig(
            servers=list(config.dns.servers), searches=list(config.dns.searches), options=list(config.dns.options)
        )
    return message


def task_config_from_wire(message: Any) -> TaskConfig:
    """Wire ``TaskConfig`` → domain; the msgpack driver config is decoded (see :func:`driver_config_from_wire`)."""
    dns = message.dns
    return TaskConfig(
        id=message.id,
        name=message.name,
        job_name=message.job_name,
        job_id=message.job_id,
        task_group_name=message.task_group_name,
        parent_job_id=message.parent_job_id,
        namespace=message.namespace,
        node_name=message.node_name,
        node_id=message.node_id,
        alloc_id=message.alloc_id,
        env=dict(message.env),
        device_env=dict(message.device_env),
        resources=resources_from_wire(message.resources) if on_wire(message.resources) else None,
        devices=tuple(
            DeviceConfig(task_path=d.task_path, host_path=d.host_path, permissions=d.cgroup_permissions)
            for d in message.devices
        ),
        mounts=tuple(
            MountConfig(
                task_path=m.task_path,
                host_path=m.host_path,
                readonly=m.readonly,
                propagation_mode=m.propagation_mode,
                selinux_label=m.selinux_label,
                request_name=m.request_name,
            )
            for m in message.mounts
        ),
        user=message.user,
        alloc_dir=message.alloc_dir,
        driver_config=driver_config_from_wire(bytes(message.msgpack_driver_config)),
        stdout_path=message.stdout_path,
        stderr_path=message.stderr_path,
        network_isolation=(
            network_isolation_from_wire(message.network_isolation_spec)
            if on_wire(message.network_isolation_spec)
            else None
        ),
        dns=(
            DnsConfig(servers=tuple(dns.servers), searches=tuple(dns.searches), options=tuple(dns.options))
            if on_wire(dns)
            else None
        ),
    )


# --- handles, results, status -----------------------------------------------------------------------------------


def task_handle_to_wire(handle: TaskHandle) -> Any:
    """``TaskHandle`` → wire."""
    return wire.TaskHandle(
        version=handle.version,
        config=task_config_to_wire(handle.config),
        state=_TASK_STATE[handle.state],
        driver_state=handle.driver_state,
    )


def task_handle_from_wire(message: Any, what: str = "TaskHandle") -> TaskHandle:
    """Wire ``TaskHandle`` → domain; a handle without its task config is a protocol error."""
    if not on_wire(message) or not on_wire(message.config):
        raise PluginProtocolError(f"{what}: no task config, expected the TaskConfig the task was started with")
    return TaskHandle(
        version=message.version,
        config=task_config_from_wire(message.config),
        state=_enum_from_wire(_TASK_STATE_BACK, message.state, f"{what}.state"),
        driver_state=bytes(message.driver_state),
    )


def task_handle_to_bytes(handle: TaskHandle) -> bytes:
    """A handle as the bytes of its wire message: how the state file keeps it, exactly as a driver sent it."""
    return bytes(task_handle_to_wire(handle))


def task_handle_from_bytes(payload: bytes) -> TaskHandle:
    """The inverse of :func:`task_handle_to_bytes`; undecodable bytes are a :class:`PluginProtocolError`."""
    try:
        message = wire.TaskHandle().parse(payload)
    except Exception as exc:  # betterproto raises whatever its decoder hits
        raise PluginProtocolError(f"stored TaskHandle of {len(payload)} bytes does not decode: {exc}") from exc
    return task_handle_from_wire(message, "stored TaskHandle")


def exit_result_to_wire(result: ExitResult) -> Any:
    """``ExitResult`` → wire (its ``err`` travels beside it, in the enclosing response)."""
    return wire.ExitResult(exit_code=result.exit_code, signal=result.signal, oom_killed=result.oom_killed)


def exit_result_from_wire(message: Any, err: str = "") -> ExitResult:
    """Wire ``ExitResult`` (unset: all zero) and the response's ``err`` → domain."""
    if not on_wire(message):
        return ExitResult(err=err or None)
    return ExitResult(
        exit_code=message.exit_code, signal=message.signal, oom_killed=message.oom_killed, err=err or None
    )


def wait_response_to_wire(result: ExitResult) -> Any:
    """``ExitResult`` → ``WaitTaskResponse``."""
    return wire.WaitTaskResponse(result=exit_result_to_wire(result), err=result.err or "")


def wait_response_from_wire(message: Any) -> ExitResult:
    """``WaitTaskResponse`` → ``ExitResult``."""
    return exit_result_from_wire(message.result, message.err)


def driver_network_to_wire(network: DriverNetwork) -> Any:
    """``DriverNetwork`` → wire ``NetworkOverride``; ports beyond int32 are a protocol error, as in Nomad."""
    for label, port in network.port_map.items():
        if not -(2**31) <= port < 2**31:
            raise PluginProtocolError(f"DriverNetwork.port_map[{truncated(label)}] = {port} is out of the int32 range")
    return wire.NetworkOverride(port_map=dict(network.port_map), addr=network.ip, auto_advertise=network.auto_advertise)


def driver_network_from_wire(message: Any) -> DriverNetwork | None:
    """Wire ``NetworkOverride`` → ``DriverNetwork``; unset is ``None``."""
    if not on_wire(message):
        return None
    return DriverNetwork(port_map=dict(message.port_map), ip=message.addr, auto_advertise=message.auto_advertise)


def start_response_to_wire(handle: TaskHandle, network: DriverNetwork | None) -> Any:
    """What ``start_task`` returned → ``StartTaskResponse``."""
    message = wire.StartTaskResponse(handle=task_handle_to_wire(handle))
    if network is not None:
        message.network_override = driver_network_to_wire(network)
    return message


def start_response_from_wire(message: Any) -> tuple[TaskHandle, DriverNetwork | None]:
    """``StartTaskResponse`` → (handle, network). A legacy non-success ``result`` is reported by the caller."""
    return (
        task_handle_from_wire(message.handle, "StartTaskResponse.handle"),
        driver_network_from_wire(message.network_override),
    )


def inspect_response_to_wire(status: TaskStatus) -> Any:
    """``TaskStatus`` → ``InspectTaskResponse`` (status, driver attributes, network override)."""
    task = wire.TaskStatus(
        id=status.id,
        name=status.name,
        state=_TASK_STATE[status.state],
        started_at=moment_to_wire(status.started_at),
        completed_at=moment_to_wire(status.completed_at),
    )
    if status.exit_result is not None:
        task.result = exit_result_to_wire(status.exit_result)
    message = wire.InspectTaskResponse(
        task=task, driver=wire.TaskDriverStatus(attributes=dict(status.driver_attributes))
    )
    if status.network_override is not None:
        message.network_override = driver_network_to_wire(status.network_override)
    return message


def inspect_response_from_wire(message: Any) -> TaskStatus:
    """``InspectTaskResponse`` → ``TaskStatus``; a response without a task status is a protocol error."""
    task = message.task
    if not on_wire(task):
        raise PluginProtocolError("InspectTaskResponse: no task status, expected one")
    return TaskStatus(
        id=task.id,
        name=task.name,
        state=_enum_from_wire(_TASK_STATE_BACK, task.state, "TaskStatus.state"),
        started_at=moment_from_wire(task.started_at),
        completed_at=moment_from_wire(task.completed_at),
        exit_result=exit_result_from_wire(task.result) if on_wire(task.result) else None,
        driver_attributes=dict(message.driver.attributes) if on_wire(message.driver) else {},
        network_override=driver_network_from_wire(message.network_override),
    )


# --- stats, events, exec ----------------------------------------------------------------------------------------


def resource_usage_to_wire(usage: ResourceUsage) -> Any:
    """``ResourceUsage`` → wire ``TaskResourceUsage`` (memory in bytes, CPU in Nomad's fields)."""
    cpu, memory = usage.cpu_stats, usage.memory_stats
    return wire.TaskResourceUsage(
        cpu=wire.CpuUsage(
            system_mode=cpu.system_mode,
            user_mode=cpu.user_mode,
            total_ticks=cpu.total_ticks,
            throttled_periods=cpu.throttled_periods,
            throttled_time=cpu.throttled_time,
            percent=cpu.percent,
            measured_fields=[_CPU_FIELDS[name] for name in cpu.measured if name in _CPU_FIELDS],
        ),
        memory=wire.MemoryUsage(
            rss=memory.rss,
            cache=memory.cache,
            max_usage=memory.max_usage,
            kernel_usage=memory.kernel_usage,
            kernel_max_usage=memory.kernel_max_usage,
            usage=memory.usage,
            swap=memory.swap,
            measured_fields=[_MEMORY_FIELDS[name] for name in memory.measured if name in _MEMORY_FIELDS],
        ),
    )


def resource_usage_from_wire(message: Any) -> ResourceUsage:
    """Wire ``TaskResourceUsage`` → domain; unknown measured-field numbers are skipped, as Nomad does."""
    cpu = CpuStats()
    if on_wire(message.cpu):
        c = message.cpu
        cpu = CpuStats(
            system_mode=c.system_mode,
            user_mode=c.user_mode,
            total_ticks=c.total_ticks,
            throttled_periods=c.throttled_periods,
            throttled_time=c.throttled_time,
            percent=c.percent,
            measured=tuple(_CPU_FIELDS_BACK[int(f)] for f in c.measured_fields if int(f) in _CPU_FIELDS_BACK),
        )
    memory = MemoryStats()
    if on_wire(message.memory):
        m = message.memory
        memory = MemoryStats(
            rss=m.rss,
            cache=m.cache,
            swap=m.swap,
            usage=m.usage,
            max_usage=m.max_usage,
            kernel_usage=m.kernel_usage,
            kernel_max_usage=m.kernel_max_usage,
            measured=tuple(_MEMORY_FIELDS_BACK[int(f)] for f in m.measured_fields if int(f) in _MEMORY_FIELDS_BACK),
        )
    return ResourceUsage(memory_stats=memory, cpu_stats=cpu)


def task_stats_to_wire(task_id: str, usage: TaskResourceUsage) -> Any:
    """One stats sample → ``TaskStatsResponse``."""
    return wire.TaskStatsResponse(
        stats=wire.TaskStats(
            id=task_id,
            timestamp=nanos_to_moment(usage.timestamp),
            agg_resource_usage=resource_usage_to_wire(usage.resource_usage),
            resource_usage_by_pid={pid: resource_usage_to_wire(u) for pid, u in usage.pids.items()},
        )
    )


def task_stats_from_wire(message: Any) -> TaskResourceUsage:
    """``TaskStatsResponse`` → one stats sample (timestamp in Unix nanoseconds)."""
    stats = message.stats
    if not on_wire(stats):
        raise PluginProtocolError("TaskStatsResponse: no stats, expected one sample")
    moment = moment_from_wire(stats.timestamp)
    return TaskResourceUsage(
        resource_usage=resource_usage_from_wire(stats.agg_resource_usage),
        timestamp=moment_to_nanos(moment) if moment is not None else 0,
        pids={pid: resource_usage_from_wire(u) for pid, u in stats.resource_usage_by_pid.items()},
    )


def task_event_to_wire(event: TaskEvent) -> Any:
    """``TaskEvent`` → wire ``DriverTaskEvent`` (``err`` has no wire field: the stream's status carries it)."""
    return wire.DriverTaskEvent(
        task_id=event.task_id,
        alloc_id=event.alloc_id,
        task_name=event.task_name,
        timestamp=moment_to_wire(event.timestamp),
        message=event.message,
        annotations=dict(event.annotations),
    )


def task_event_from_wire(message: Any) -> TaskEvent:
    """Wire ``DriverTaskEvent`` → ``TaskEvent``; an unset timestamp becomes the epoch."""
    return TaskEvent(
        task_id=message.task_id,
        alloc_id=message.alloc_id,
        task_name=message.task_name,
        timestamp=moment_from_wire(message.timestamp) or _EPOCH,
        message=message.message,
        annotations=dict(message.annotations),
    )


def exec_response_to_wire(result: ExecTaskResult) -> Any:
    """``ExecTaskResult`` → ``ExecTaskResponse``."""
    return wire.ExecTaskResponse(
        stdout=result.stdout, stderr=result.stderr, result=exit_result_to_wire(result.exit_result)
    )


def exec_response_from_wire(message: Any) -> ExecTaskResult:
    """``ExecTaskResponse`` → ``ExecTaskResult``."""
    return ExecTaskResult(
        stdout=bytes(message.stdout), stderr=bytes(message.stderr), exit_result=exit_result_from_wire(message.result)
    )
