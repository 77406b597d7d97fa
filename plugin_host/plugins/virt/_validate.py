"""Check a task before anything is created: every problem is collected and reported in one error.

Nothing here writes: paths are resolved (symlinks and ``..``) and stat'ed, the user-data file is read. The result,
:class:`TaskPlan`, is everything the driver needs to build the VM.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from plugin_host._text import truncated
from plugin_host.driver.api import TaskConfig
from plugin_host.errors import TaskConfigError
from plugin_host.plugins.virt._config import NetworkInterfaceConfig, OsConfig, VirtConfig, VirtTaskConfig

__all__ = [
    "MAX_INTERFACES",
    "MIN_DISK_MB",
    "MIN_MEMORY_MB",
    "TaskPlan",
    "allowed_roots",
    "domain_name_for",
    "plan_task",
]

MIN_MEMORY_MB = 500
"""Smallest memory a VM gets (nomad-driver-virt's minimum)."""
MIN_DISK_MB = 2000
"""Smallest ``primary_disk_size`` accepted (nomad-driver-virt's minimum)."""
MAX_INTERFACES = 1
_MAX_NAME = 200

# RFC 1123 label: letters, digits and '-', neither first nor last '-', at most 63 characters.
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """A validated task: what to boot, with which resources, and what goes into the cloud-init seed."""

    task_id: str
    domain_name: str
    hostname: str
    image: str
    """The resolved (real) path of the image."""
    memory_mb: int
    vcpus: int
    cpuset: str
    user_data: bytes | None = field(repr=False)
    """The user-data content (read from the file when ``user_data`` named one), or None for the default. Left out
    of the repr: user data routinely carries passwords and keys."""
    task: VirtTaskConfig


def domain_name_for(task_id: str) -> str:
    """The libvirt domain name of a task: nomad-driver-virt's ``<task name>-<suffix>`` from ``<alloc>/<task>/<suffix>``.

    Characters libvirt or a shell would trip over become ``-``; an id without ``/`` is used whole.
    """
    parts = task_id.split("/")
    raw = "-".join(parts[1:]) if len(parts) > 1 else task_id
    return _NAME_BAD_CHARS.sub("-", raw).strip("-.")


def _default_hostname(domain_name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", f"nomad-{domain_name}".lower())[:63]
    return label.strip("-") or "nomad"


def _task_dir(config: TaskConfig) -> str | None:
    return os.path.join(config.alloc_dir, config.name) if config.alloc_dir else None


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def allowed_roots(config: TaskConfig, plugin: VirtConfig) -> list[str]:
    """The real paths of the directories the task's image may come from."""
    roots = [*plugin.image_paths, plugin.data_dir]
    if config.alloc_dir:
        roots.append(config.alloc_dir)
    return [os.path.realpath(root) for root in roots]


def _check_image(task: VirtTaskConfig, config: TaskConfig, plugin: VirtConfig, problems: list[str]) -> str:
    given = task.image
    if not given:
        problems.append("image: is empty; expected the path of a disk image")
        return ""
    task_dir = _task_dir(config)
    if os.path.isabs(given):
        joined = given
    elif task_dir is not None:
        joined = os.path.join(task_dir, given)
    else:
        problems.append(f"image: {truncated(given)} is relative and the task has no alloc_dir to resolve it against")
        return ""
    resolved = os.path.realpath(joined)
    roots = allowed_roots(config, plugin)
    if not any(_is_under(resolved, root) for root in roots):
        via = "" if resolved == os.path.normpath(joined) else f" (resolved from {truncated(joined)})"
        problems.append(
            f"image: {truncated(resolved)}{via} is outside the allowed image paths {roots}"
            " (image_paths, data_dir and the task's alloc dir)"
        )
        return resolved
    if not os.path.isfile(resolved):
        problems.append(f"image: {truncated(resolved)} does not exist or is not a regular file")
    elif not os.access(resolved, os.R_OK):
        problems.append(f"image: {truncated(resolved)} is not readable")
    return resolved


def _check_user_data(task: VirtTaskConfig, config: TaskConfig, problems: list[str]) -> bytes | None:
    value = task.user_data
    if value is None or value == "":
        return None
    # Inline content starts with '#' (#cloud-config, #!/bin/sh, #include, ...) or spans lines; else it is a path.
    if value.startswith("#") or "\n" in value:
        return value.encode()
    task_dir = _task_dir(config)
    path = value if os.path.isabs(value) or task_dir is None else os.path.join(task_dir, value)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        problems.append(f"user_data: file {truncated(path)} cannot be read: {exc.strerror or exc}")
        return None


def _check_interfaces(interfaces: tuple[NetworkInterfaceConfig, ...], problems: list[str]) -> None:
    if len(interfaces) > MAX_INTERFACES:
        problems.append(
            f"network_interface: {len(interfaces)} interfaces configured; at most {MAX_INTERFACES} is supported"
        )
    for index, interface in enumerate(interfaces):
        if interface.bridge is not None and not interface.bridge.name:
            problems.append(f"network_interface[{index}].bridge.name: is empty; expected the name of a host bridge")


def _check_os(os_config: OsConfig | None, problems: list[str]) -> None:
    if os_config is not None and not os_config.arch and not os_config.machine:
        problems.append("os: neither arch nor machine is set; set at least one, or leave the os block out")


def _cpus(config: TaskConfig, problems: list[str]) -> tuple[int, str]:
    linux = config.resources.linux_resources if config.resources is not None else None
    cpuset = linux.cpuset_cpus.strip() if linux is not None else ""
    count = 0
    for part in filter(None, (p.strip() for p in cpuset.split(","))):
        low, _, high = part.partition("-")
        try:
            count += (int(high) - int(low) + 1) if high else 1
        except ValueError:
            problems.append(f"resources.cpuset_cpus: {truncated(cpuset)} is not a CPU list such as '0-3,6'")
            return 0, ""
    if count < 1:
        problems.append(
            f"cpus: no cores reserved (cpuset_cpus={truncated(cpuset)}); use resources.cores in the job spec"
        )
    return count, cpuset


def plan_task(task: VirtTaskConfig, config: TaskConfig, plugin: VirtConfig) -> TaskPlan:
    """Validate ``task`` for ``config`` under the plugin config; raise one :class:`TaskConfigError` listing all
    problems. Blocking (stats and reads files): run it in a worker thread."""
    problems: list[str] = []
    name = domain_name_for(config.id)
    if not name:
        problems.append(
            f"name: task id {truncated(config.id)} gives an empty VM name; expected letters or digits in it"
        )
    elif len(name) > _MAX_NAME:
        problems.append(f"name: VM name {name[:40]!r}... is {len(name)} characters; at most {_MAX_NAME}")
    image = _check_image(task, config, plugin, problems)
    nomad = config.resources.nomad_resources if config.resources is not None else None
    memory_mb = nomad.memory.memory_mb if nomad is not None else 0
    if memory_mb < MIN_MEMORY_MB:
        problems.append(f"memory: {memory_mb} MB assigned; at least {MIN_MEMORY_MB} MB is required")
    if task.primary_disk_size is not None and task.primary_disk_size < MIN_DISK_MB:
        problems.append(f"primary_disk_size: {task.primary_disk_size} MB; at least {MIN_DISK_MB} MB is required")
    vcpus, cpuset = _cpus(config, problems)
    hostname = task.hostname if task.hostname else _default_hostname(name)
    if task.hostname is not None and not _LABEL.fullmatch(task.hostname):
        problems.append(
            f"hostname: {truncated(task.hostname)} is not an RFC 1123 label; expected 1-63 letters, digits or '-',"
            " starting and ending with a letter or digit"
        )
    _check_interfaces(task.network_interface, problems)
    _check_os(task.os, problems)
    user_data = _check_user_data(task, config, problems)
    if problems:
        listing = "\n  - ".join(problems)
        noun = "problem" if len(problems) == 1 else "problems"
        raise TaskConfigError(f"virt task {truncated(config.id)}: {len(problems)} {noun}:\n  - {listing}")
    return TaskPlan(
        task_id=config.id,
        domain_name=name,
        hostname=hostname,
        image=image,
        memory_mb=memory_mb,
        vcpus=vcpus,
        cpuset=cpuset,
        user_data=user_data,
        task=task,
    )
