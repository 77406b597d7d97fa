"""Resource usage of a VM from libvirt: memory in bytes, CPU as Nomad's percentages and MHz ticks."""

from __future__ import annotations

import time
from dataclasses import dataclass

import libvirt

from plugin_host.driver.api import CpuStats, MemoryStats, ResourceUsage, TaskResourceUsage

__all__ = ["Sample", "sample_domain", "usage_between"]

KIB = 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a domain's counters."""

    timestamp_ns: int
    monotonic_ns: int
    cpu_time_ns: int
    user_time_ns: int
    system_time_ns: int
    memory: dict[str, int]
    current_memory_kib: int
    host_mhz: int


def sample_domain(conn: libvirt.virConnect, name: str) -> Sample:
    """Read the counters of domain ``name`` (blocking)."""
    dom = conn.lookupByName(name)
    info = dom.info()  # [state, max memory KiB, memory KiB, vcpus, cpu time ns]
    try:
        memory = {str(k): int(v) for k, v in dom.memoryStats().items()}
    except libvirt.libvirtError:
        memory = {}
    try:
        total = dom.getCPUStats(True)[0]
    except libvirt.libvirtError:
        total = {}
    return Sample(
        timestamp_ns=time.time_ns(),
        monotonic_ns=time.monotonic_ns(),
        cpu_time_ns=int(total.get("cpu_time", info[4])),
        user_time_ns=int(total.get("user_time", 0)),
        system_time_ns=int(total.get("system_time", 0)),
        memory=memory,
        current_memory_kib=int(info[2]),
        host_mhz=int(conn.getInfo()[3]),
    )


def _memory(sample: Sample) -> MemoryStats:
    memory = sample.memory
    measured = []
    rss = memory.get("rss", 0) * KIB
    if "rss" in memory:
        measured.append("RSS")
    if "available" in memory and "unused" in memory:
        usage = (memory["available"] - memory["unused"]) * KIB
    else:
        usage = memory.get("actual", sample.current_memory_kib) * KIB
    measured.append("Usage")
    swap = memory.get("swap_out", 0) * KIB
    if "swap_out" in memory:
        measured.append("Swap")
    return MemoryStats(rss=rss, usage=usage, swap=swap, measured=tuple(measured))


def _cpu(previous: Sample | None, sample: Sample) -> CpuStats:
    if previous is None:
        return CpuStats(measured=("Percent", "User Mode", "System Mode", "Total Ticks"))
    wall = max(sample.monotonic_ns - previous.monotonic_ns, 1)
    percent = 100.0 * max(sample.cpu_time_ns - previous.cpu_time_ns, 0) / wall
    user = 100.0 * max(sample.user_time_ns - previous.user_time_ns, 0) / wall
    system = 100.0 * max(sample.system_time_ns - previous.system_time_ns, 0) / wall
    return CpuStats(
        percent=percent,
        user_mode=user,
        system_mode=system,
        total_ticks=percent / 100.0 * sample.host_mhz,
        measured=("Percent", "User Mode", "System Mode", "Total Ticks"),
    )


def usage_between(previous: Sample | None, sample: Sample) -> TaskResourceUsage:
    """The usage at ``sample``; CPU rates are over the time since ``previous`` (zero for the first sample)."""
    return TaskResourceUsage(
        resource_usage=ResourceUsage(memory_stats=_memory(sample), cpu_stats=_cpu(previous, sample)),
        timestamp=sample.timestamp_ns,
    )
