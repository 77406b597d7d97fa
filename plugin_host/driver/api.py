"""Nomad's task driver contract (``plugins/drivers``), async, as a Protocol and frozen pydantic models.

A task driver runs workloads. The agent starts a task from a :class:`TaskConfig` and gets back a
:class:`TaskHandle` — opaque driver state the agent keeps so that a restarted driver can re-attach to the task
(:meth:`DriverPlugin.recover_task`). Waiting, stopping, destroying, inspecting, signalling, stats and events are all
addressed by the task id.

Semantics every driver follows (Nomad's, with its gaps closed):

- ``wait_task`` returns the :class:`ExitResult` once the task has exited; for a task that already exited it
  returns at once, and it keeps answering after ``stop_task``. After ``destroy_task`` the id is unknown.
- An unknown task id raises :class:`plugin_host.errors.TaskNotFoundError` from every per-task call.
- ``stop_task`` sends ``signal`` (the driver's default when empty), waits ``timeout`` seconds, then kills; it is
  idempotent on an exited task.
- ``destroy_task`` on a running task raises :class:`plugin_host.errors.DriverError` unless ``force`` is set.
- Streams (``fingerprint``, ``task_stats``, ``task_events``) are async iterators; leaving the ``async for`` loop
  (or closing the iterator) stops the work behind them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from plugin_host.base.api import BasePlugin
from plugin_host.base.hclspec import Spec
from plugin_host.base.structs import Attribute

__all__ = [
    "DRIVER_API_VERSION",
    "AllocatedCpuResources",
    "AllocatedMemoryResources",
    "AllocatedTaskResources",
    "Capabilities",
    "CpuStats",
    "DeviceConfig",
    "DnsConfig",
    "DriverFingerprint",
    "DriverNetwork",
    "DriverPlugin",
    "ExecTaskResult",
    "ExitResult",
    "FsIsolation",
    "HealthState",
    "HostsConfig",
    "LinuxResources",
    "MemoryStats",
    "MountConfig",
    "MountConfigSupport",
    "NetIsolationMode",
    "NetworkIsolationSpec",
    "NetworkPort",
    "NetworkResource",
    "PortMapping",
    "ResourceUsage",
    "Resources",
    "TaskConfig",
    "TaskEvent",
    "TaskHandle",
    "TaskResourceUsage",
    "TaskState",
    "TaskStatus",
]

# The only driver plugin API version Nomad defines (plugins/drivers/versions.go).
DRIVER_API_VERSION = "v0.1.0"

# Bytes (driver state, msgpack values) travel through JSON (the state file) as base64, not as UTF-8 text.
_FROZEN = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


# --- enums --------------------------------------------------------------------------------------------------------


class HealthState(enum.StrEnum):
    """How usable the driver is on this host (Nomad's ``HealthState``)."""

    UNDETECTED = "undetected"  # its dependencies are missing: it cannot run tasks here
    UNHEALTHY = "unhealthy"  # its dependencies are there but it cannot work right now
    HEALTHY = "healthy"


class TaskState(enum.StrEnum):
    """Where a task is in its life."""

    UNKNOWN = "unknown"
    RUNNING = "running"
    EXITED = "exited"


class FsIsolation(enum.StrEnum):
    """What filesystem isolation a driver gives its tasks."""

    NONE = "none"
    CHROOT = "chroot"
    IMAGE = "image"
    UNVEIL = "unveil"


class NetIsolationMode(enum.StrEnum):
    """A network isolation mode a driver supports."""

    HOST = "host"
    GROUP = "group"
    TASK = "task"
    NONE = "none"


class MountConfigSupport(enum.StrEnum):
    """Whether a driver honours the mount configs of a task (Nomad's ``MountConfigSupport``)."""

    ALL = "all"
    NONE = "none"


# --- plugin-level answers -----------------------------------------------------------------------------------------


class DriverFingerprint(BaseModel):
    """One message of the fingerprint stream: node attributes and the driver's health.

    ``error`` is set (and nothing else is meaningful) when the stream failed; it is the last message then.
    """

    model_config = _FROZEN

    attributes: dict[str, Attribute] = {}
    health: HealthState = HealthState.UNDETECTED
    health_description: str = ""
    error: str | None = None


class Capabilities(BaseModel):
    """What a driver can do beyond the core task calls."""

    model_config = _FROZEN

    send_signals: bool = False
    exec: bool = False
    fs_isolation: FsIsolation = FsIsolation.NONE
    network_isolation_modes: tuple[NetIsolationMode, ...] = ()
    must_init_network: bool = False
    mount_configs: MountConfigSupport = MountConfigSupport.ALL
    disable_log_collection: bool = False
    dynamic_workload_users: bool = False


# --- the task's configuration -------------------------------------------------------------------------------------


class AllocatedCpuResources(BaseModel):
    """CPU allotted to the task, in Nomad's shares (MHz)."""

    model_config = _FROZEN

    cpu_shares: int = 0


class AllocatedMemoryResources(BaseModel):
    """Memory allotted to the task, in MiB (``memory_max_mb`` 0: no oversubscription)."""

    model_config = _FROZEN

    memory_mb: int = 0
    memory_max_mb: int = 0


class NetworkPort(BaseModel):
    """A labelled port of a network resource."""

    model_config = _FROZEN

    label: str
    value: int = 0


class NetworkResource(BaseModel):
    """A network the task was allotted (device, addresses, bandwidth, ports)."""

    model_config = _FROZEN

    device: str = ""
    cidr: str = ""
    ip: str = ""
    mbits: int = 0
    reserved_ports: tuple[NetworkPort, ...] = ()
    dynamic_ports: tuple[NetworkPort, ...] = ()


class AllocatedTaskResources(BaseModel):
    """The resources Nomad's scheduler allotted to the task."""

    model_config = _FROZEN

    cpu: AllocatedCpuResources = AllocatedCpuResources()
    memory: AllocatedMemoryResources = AllocatedMemoryResources()
    networks: tuple[NetworkResource, ...] = ()


class LinuxResources(BaseModel):
    """The allotment computed for Linux features (cgroups): CFS period/quota, shares, limits, cpuset."""

    model_config = _FROZEN

    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_bytes: int = 0
    oom_score_adj: int = 0
    cpuset_cpus: str = ""
    cpuset_cgroup_path: str = ""
    percent_ticks: float = 0.0


class PortMapping(BaseModel):
    """An allocated port and the port it maps to inside the task."""

    model_config = _FROZEN

    label: str
    value: int = 0
    to: int = 0
    host_ip: str = ""


class Resources(BaseModel):
    """Everything the task may use; ``ports`` None means the allocation has no port mappings."""

    model_config = _FROZEN

    nomad_resources: AllocatedTaskResources | None = None
    linux_resources: LinuxResources | None = None
    ports: tuple[PortMapping, ...] | None = None


class MountConfig(BaseModel):
    """A host path bind-mounted into the task."""

    model_config = _FROZEN

    task_path: str
    host_path: str
    readonly: bool = False
    propagation_mode: str = ""
    selinux_label: str = ""
    request_name: str = ""


class DeviceConfig(BaseModel):
    """A host device made available in the task, with its cgroup permissions (``rwm``)."""

    model_config = _FROZEN

    task_path: str
    host_path: str
    permissions: str = ""


class HostsConfig(BaseModel):
    """The hostname and address for the task's ``/etc/hosts``."""

    model_config = _FROZEN

    hostname: str = ""
    address: str = ""


class NetworkIsolationSpec(BaseModel):
    """The network namespace the task joins (Linux)."""

    model_config = _FROZEN

    mode: NetIsolationMode = NetIsolationMode.HOST
    path: str = ""
    labels: dict[str, str] = {}
    hosts_config: HostsConfig | None = None


class DnsConfig(BaseModel):
    """The task's resolver configuration."""

    model_config = _FROZEN

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


class TaskConfig(BaseModel):
    """Everything a driver needs to start one task (Nomad's ``TaskConfig``).

    ``id`` must be unique to the driver. ``driver_config`` is the task's ``config {}`` block, decoded: a mapping
    here, msgpack on the wire (as Nomad sends it). ``alloc_dir`` is the allocation directory on the host; the
    task's own directory is ``<alloc_dir>/<name>``.
    """

    # pydantic's error text prints input_value=...: an env or driver config value must not reach it.
    model_config = ConfigDict(**_FROZEN, hide_input_in_errors=True)

    id: str
    name: str
    job_name: str = ""
    job_id: str = ""
    task_group_name: str = ""
    parent_job_id: str = ""
    namespace: str = ""
    node_name: str = ""
    node_id: str = ""
    alloc_id: str = ""
    # The environment and the driver config may carry secrets (tokens, passwords): kept out of reprs.
    env: dict[str, str] = Field(default={}, repr=False)
    device_env: dict[str, str] = Field(default={}, repr=False)
    resources: Resources | None = None
    devices: tuple[DeviceConfig, ...] = ()
    mounts: tuple[MountConfig, ...] = ()
    user: str = ""
    alloc_dir: str = ""
    driver_config: dict[str, Any] = Field(default={}, repr=False)
    stdout_path: str = ""
    stderr_path: str = ""
    network_isolation: NetworkIsolationSpec | None = None
    dns: DnsConfig | None = None


# --- a task's life ------------------------------------------------------------------------------------------------


class TaskHandle(BaseModel):
    """What the agent keeps about a started task so a (restarted) driver can recover it.

    ``version`` versions the driver's own ``driver_state`` encoding (0 is reserved by Nomad for pre-0.9 state);
    ``driver_state`` is opaque to everyone but the driver.
    """

    model_config = _FROZEN

    version: int
    config: TaskConfig
    state: TaskState = TaskState.UNKNOWN
    driver_state: bytes = b""


class DriverNetwork(BaseModel):
    """Network settings the driver chose for the task, overriding the agent's (Nomad's ``DriverNetwork``)."""

    model_config = _FROZEN

    port_map: dict[str, int] = {}
    ip: str = ""
    auto_advertise: bool = False


class ExitResult(BaseModel):
    """How a task ended: exit code, the signal that killed it, whether the OOM killer did, and a driver error."""

    model_config = _FROZEN

    exit_code: int = 0
    signal: int = 0
    oom_killed: bool = False
    err: str | None = None

    @property
    def successful(self) -> bool:
        """Exit code 0, no signal and no error."""
        return self.exit_code == 0 and self.signal == 0 and self.err is None


class TaskStatus(BaseModel):
    """What ``inspect_task`` reports; ``completed_at`` and ``exit_result`` are set once the task exited."""

    model_config = _FROZEN

    id: str
    name: str
    state: TaskState
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exit_result: ExitResult | None = None
    driver_attributes: dict[str, str] = {}
    network_override: DriverNetwork | None = None


class MemoryStats(BaseModel):
    """Memory use in bytes; ``measured`` names the fields actually sampled (Nomad's names: ``"RSS"``, ...)."""

    model_config = _FROZEN

    rss: int = 0
    cache: int = 0
    swap: int = 0
    mapped_file: int = 0
    usage: int = 0
    max_usage: int = 0
    kernel_usage: int = 0
    kernel_max_usage: int = 0
    measured: tuple[str, ...] = ()


class CpuStats(BaseModel):
    """CPU use in Nomad's fields: seconds-based modes as percentages, ticks in MHz, throttling in periods and
    nanoseconds; ``measured`` names the fields actually sampled (``"System Mode"``, ``"Percent"``, ...)."""

    model_config = _FROZEN

    system_mode: float = 0.0
    user_mode: float = 0.0
    total_ticks: float = 0.0
    throttled_periods: int = 0
    throttled_time: int = 0
    percent: float = 0.0
    measured: tuple[str, ...] = ()


class ResourceUsage(BaseModel):
    """Memory and CPU use of a task or one of its processes."""

    model_config = _FROZEN

    memory_stats: MemoryStats = MemoryStats()
    cpu_stats: CpuStats = CpuStats()


class TaskResourceUsage(BaseModel):
    """One sample of the stats stream: the task as a whole and per process id; ``timestamp`` in Unix nanoseconds."""

    model_config = _FROZEN

    resource_usage: ResourceUsage = ResourceUsage()
    timestamp: int
    pids: dict[str, ResourceUsage] = {}


class TaskEvent(BaseModel):
    """Something a driver reports about a task (pulling an image, a restart, ...); ``err`` ends the stream."""

    model_config = _FROZEN

    task_id: str = ""
    task_name: str = ""
    alloc_id: str = ""
    timestamp: datetime
    message: str = ""
    annotations: dict[str, str] = {}
    err: str | None = None


class ExecTaskResult(BaseModel):
    """The output and exit of a command run inside a task."""

    model_config = _FROZEN

    stdout: bytes = b""
    stderr: bytes = b""
    exit_result: ExitResult = ExitResult()


# --- the plugin ---------------------------------------------------------------------------------------------------


@runtime_checkable
class DriverPlugin(BasePlugin, Protocol):
    """A Nomad task driver, async.

    Errors: an unknown task id raises :class:`~plugin_host.errors.TaskNotFoundError`; a refusal or failure of the
    driver raises :class:`~plugin_host.errors.DriverError` (``recoverable`` says whether retrying may help); invalid
    task configuration raises :class:`~plugin_host.errors.TaskConfigError`.

    Optional, as in Nomad: ``async def init(self) -> None`` (after ``set_config``) and ``async def shutdown(self)
    -> None`` (before the plugin goes away); the server calls them when the object has them.
    """

    async def task_config_schema(self) -> Spec:
        """The hclspec of a task's ``config {}`` block for this driver."""
        ...

    async def capabilities(self) -> Capabilities:
        """What the driver supports beyond the core calls."""
        ...

    def fingerprint(self) -> AsyncIterator[DriverFingerprint]:
        """Stream the driver's health and attributes: the first message at once, then one per change."""
        ...

    async def start_task(self, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        """Start a task; its handle (to persist) and the network the driver set up, if any."""
        ...

    async def wait_task(self, task_id: str) -> ExitResult:
        """Wait for the task to exit; at once for an exited task."""
        ...

    async def stop_task(self, task_id: str, timeout: float, signal: str = "") -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Send ``signal`` (or the driver's default), wait up to ``timeout`` seconds, then kill the task."""
        ...

    async def destroy_task(self, task_id: str, force: bool = False) -> None:
        """Forget the task and clean up after it; a running task needs ``force`` (which kills it)."""
        ...

    async def inspect_task(self, task_id: str) -> TaskStatus:
        """The task's current status."""
        ...

    async def recover_task(self, handle: TaskHandle) -> None:
        """Re-attach to a task started earlier (possibly by another instance of the driver) from its handle."""
        ...

    def task_stats(self, task_id: str, interval: float) -> AsyncIterator[TaskResourceUsage]:
        """Stream the task's resource usage every ``interval`` seconds until it exits."""
        ...

    def task_events(self) -> AsyncIterator[TaskEvent]:
        """Stream events about every task of this driver."""
        ...

    async def signal_task(self, task_id: str, signal: str) -> None:
        """Send a signal (``"SIGHUP"``, ...) to the task; needs the ``send_signals`` capability."""
        ...

    async def exec_task(self, task_id: str, command: Sequence[str], timeout: float) -> ExecTaskResult:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Run ``command`` inside the task's environment, killed after ``timeout`` seconds; needs ``exec``."""
        ...
