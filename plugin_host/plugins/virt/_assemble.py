"""Assemble a validated task's VM: the directories it shares, its cloud-init seed and its domain spec."""

from __future__ import annotations

import os

from plugin_host.driver.api import TaskConfig
from plugin_host.plugins.virt._cloudinit import SeedContent, Share, build_seed
from plugin_host.plugins.virt._domain import DomainSpec, FsShare
from plugin_host.plugins.virt._validate import TaskPlan

__all__ = ["domain_spec", "seed_files", "shares_for"]


def shares_for(config: TaskConfig) -> list[tuple[FsShare, Share]]:
    """Nomad's alloc, local and secrets directories that exist, with their 9p tags and mount points in the guest."""
    if not config.alloc_dir:
        return []
    task_dir = os.path.join(config.alloc_dir, config.name)
    wanted = [
        (os.path.join(config.alloc_dir, "alloc"), "allocDir", config.env.get("NOMAD_ALLOC_DIR", "/alloc")),
        (os.path.join(task_dir, "local"), "localDir", config.env.get("NOMAD_TASK_DIR", "/local")),
        (os.path.join(task_dir, "secrets"), "secretsDir", config.env.get("NOMAD_SECRETS_DIR", "/secrets")),
    ]
    return [(FsShare(source, tag), Share(tag, guest)) for source, tag, guest in wanted if os.path.isdir(source)]


def seed_files(plan: TaskPlan, config: TaskConfig, shares: list[tuple[FsShare, Share]]) -> dict[str, bytes]:
    """The seed's meta-data, user-data and vendor-data for the task."""
    task = plan.task
    return build_seed(
        SeedContent(
            instance_id=plan.domain_name,
            hostname=plan.hostname,
            user_data=plan.user_data,
            password=task.default_user_password.get_secret_value() if task.default_user_password else None,
            ssh_key=task.default_user_authorized_ssh_key,
            timezone=task.timezone,
            cmds=task.cmds,
            env={**config.env, **config.device_env},
            shares=[share for _, share in shares],
        )
    )


def domain_spec(
    plan: TaskPlan,
    config: TaskConfig,
    shares: list[tuple[FsShare, Share]],
    *,
    domain_type: str,
    disk: tuple[str, str],
    seed_path: str,
    console_path: str,
) -> DomainSpec:
    """The domain of the task; ``disk`` is (path, format)."""
    task = plan.task
    return DomainSpec(
        name=plan.domain_name,
        task_id=config.id,
        domain_type=domain_type,
        memory_mb=plan.memory_mb,
        vcpus=plan.vcpus,
        cpuset=plan.cpuset,
        disk_path=disk[0],
        disk_format=disk[1],
        seed_path=seed_path,
        console_path=console_path,
        arch=task.os.arch if task.os is not None else None,
        machine=task.os.machine if task.os is not None else None,
        shares=[fs for fs, _ in shares],
        bridge=next((i.bridge.name for i in task.network_interface if i.bridge is not None), None),
    )
