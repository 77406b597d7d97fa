"""What the driver keeps per task: the state it persists in the handle, and the live record with the exit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import libvirt
from pydantic import BaseModel, ConfigDict, ValidationError

from plugin_host.driver.api import ExitResult, TaskConfig, TaskState, TaskStatus
from plugin_host.errors import DriverError

__all__ = [
    "HANDLE_VERSION",
    "DriverState",
    "TaskRecord",
    "exit_for_shutoff_reason",
    "exit_for_stopped_event",
    "vanished_exit",
]

HANDLE_VERSION = 1

# libvirt's STOPPED event details and SHUTOFF state reasons, by the same words.
_STOPPED_DETAIL = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "restored from a snapshot",
}
_SHUTOFF_REASON = {
    libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN: "unknown",
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "saved",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed",
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "restored from a snapshot",
    libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "stopped while libvirtd was down",
}


def _exit(reason: str) -> ExitResult:
    if reason == "shutdown":
        return ExitResult()
    if reason == "crashed":
        return ExitResult(exit_code=1, err="crashed: the guest crashed (kernel panic reported by the VM)")
    if reason == "destroyed":
        return ExitResult(exit_code=137, signal=9, err="destroyed: the VM was powered off forcibly")
    return ExitResult(exit_code=1, err=f"stopped: the VM shut off ({reason})")


def exit_for_stopped_event(detail: int) -> ExitResult:
    """The exit of a VM from the detail of its STOPPED lifecycle event."""
    return _exit(_STOPPED_DETAIL.get(detail, f"detail {detail}"))


def exit_for_shutoff_reason(reason: int) -> ExitResult:
    """The exit of a VM from the reason of its SHUTOFF state."""
    return _exit(_SHUTOFF_REASON.get(reason, f"reason {reason}"))


def vanished_exit(domain: str) -> ExitResult:
    """The exit of a VM whose domain was removed behind the driver's back."""
    return ExitResult(exit_code=1, err=f"vanished: libvirt domain {domain!r} no longer exists")


class DriverState(BaseModel):
    """Everything needed to re-attach to a task's VM and clean up after it; JSON in the task handle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str
    uuid: str
    domain_type: str
    overlay: str | None
    seed: str
    console: str
    started_at: datetime

    def encode(self) -> bytes:
        """The bytes that go into ``TaskHandle.driver_state``."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes, *, task_id: str) -> DriverState:
        """Parse ``TaskHandle.driver_state``; anything else is a :class:`DriverError` naming the task."""
        try:
            return cls.model_validate(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise DriverError(
                f"virt: task {task_id!r}: driver_state is not a virt driver state ({len(data)} bytes): {exc}"
            ) from exc


@dataclass(eq=False)
class TaskRecord:
    """A task the driver tracks: its config, persisted state and, once it exited, the exit."""

    config: TaskConfig
    state: DriverState
    exit_result: ExitResult | None = None
    completed_at: datetime | None = None
    exited: anyio.Event = field(default_factory=anyio.Event)

    def finish(self, result: ExitResult) -> bool:
        """Record the exit (the first one wins); True when this call recorded it."""
        if self.exit_result is not None:
            return False
        self.exit_result = result
        self.completed_at = datetime.now(UTC)
        self.exited.set()
        return True

    def status(self) -> TaskStatus:
        """The task's status for ``inspect_task``."""
        return TaskStatus(
            id=self.config.id,
            name=self.config.name,
            state=TaskState.RUNNING if self.exit_result is None else TaskState.EXITED,
            started_at=self.state.started_at,
            completed_at=self.completed_at,
            exit_result=self.exit_result,
            driver_attributes={
                "domain": self.state.domain,
                "uuid": self.state.uuid,
                "domain_type": self.state.domain_type,
            },
        )
