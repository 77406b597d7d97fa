"""``VirtDriver``: Nomad's task driver API running each task as a VM through libvirt (after nomad-driver-virt).

Every task is validated completely before anything is created. Exits come from libvirt's lifecycle events (no
polling), a libvirtd restart is survived by reconnecting and re-reading the domains' states, and a fresh driver
re-attaches to running VMs from the handle's ``driver_state`` alone.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import anyio.to_thread
import libvirt

from plugin_host._hub import SubscriptionHub
from plugin_host._text import truncated
from plugin_host._version import __version__, go_version
from plugin_host.base.api import PLUGIN_TYPE_DRIVER, PluginInfoResponse
from plugin_host.base.hclspec import Spec
from plugin_host.base.structs import Attribute
from plugin_host.driver.api import (
    DRIVER_API_VERSION,
    Capabilities,
    DriverFingerprint,
    DriverNetwork,
    ExecTaskResult,
    ExitResult,
    FsIsolation,
    HealthState,
    MountConfigSupport,
    NetIsolationMode,
    TaskConfig,
    TaskEvent,
    TaskHandle,
    TaskResourceUsage,
    TaskState,
    TaskStatus,
)
from plugin_host.errors import ConfigError, DriverError, TaskConfigError, TaskExistsError, TaskNotFoundError
from plugin_host.plugins._task_events import task_event_subscriber
from plugin_host.plugins.virt._assemble import domain_spec, seed_files, shares_for
from plugin_host.plugins.virt._cloudinit import write_seed
from plugin_host.plugins.virt._config import CONFIG_SPEC, TASK_CONFIG_SPEC, VirtConfig, VirtTaskConfig
from plugin_host.plugins.virt._disk import check_image_files, create_overlay, image_info, remove_files
from plugin_host.plugins.virt._domain import domain_xml, kvm_usable, pick_domain_type
from plugin_host.plugins.virt._libvirt import LibvirtConnection
from plugin_host.plugins.virt._stats import Sample, sample_domain, usage_between
from plugin_host.plugins.virt._task import (
    HANDLE_VERSION,
    DriverState,
    TaskRecord,
    exit_for_shutoff_reason,
    exit_for_stopped_event,
    vanished_exit,
)
from plugin_host.plugins.virt._validate import TaskPlan, allowed_roots, plan_task

__all__ = ["PLUGIN_NAME", "VirtDriver"]

logger = logging.getLogger(__name__)

PLUGIN_NAME = "virt"
_KILL_WAIT = 30.0
"""Seconds to wait for libvirt to report a destroyed VM as stopped."""
_EVENT_BUFFER = 256

CAPABILITIES = Capabilities(
    send_signals=False,
    exec=False,
    fs_isolation=FsIsolation.IMAGE,
    network_isolation_modes=(NetIsolationMode.HOST,),
    must_init_network=False,
    mount_configs=MountConfigSupport.NONE,
    disable_log_collection=True,
)


def _no_domain(exc: libvirt.libvirtError) -> bool:
    return bool(exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN)


def _not_running(exc: libvirt.libvirtError) -> bool:
    return bool(exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID)


class VirtDriver:
    """Runs each task as a libvirt VM; implements :class:`plugin_host.driver.api.DriverPlugin`.

    Use it as an async context manager (leaving closes the libvirt connection); nothing connects until the first
    call that needs libvirt. ``fingerprint_period`` is the seconds between health checks while libvirt answers.
    """

    def __init__(
        self, config: VirtConfig | Mapping[str, Any] | bytes | None = None, *, fingerprint_period: float = 30.0
    ) -> None:
        if not (fingerprint_period > 0 and math.isfinite(fingerprint_period)):
            raise ConfigError(
                f"virt: fingerprint_period {truncated(fingerprint_period)} must be a positive number of seconds"
            )
        self._config = VirtConfig.coerce(config)
        self._fingerprint_period = fingerprint_period
        self._conn = self._new_connection()
        self._tasks: dict[str, TaskRecord] = {}
        self._by_domain: dict[str, TaskRecord] = {}
        self._starting: set[str] = set()
        self._events = SubscriptionHub[TaskEvent]()

    def _new_connection(self) -> LibvirtConnection:
        return LibvirtConnection(self._config.emulator, on_lifecycle=self._lifecycle, on_reconnect=self._reconcile_all)

    @property
    def config(self) -> VirtConfig:
        """The plugin configuration in effect."""
        return self._config

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Close the libvirt connection and end the event streams; VMs keep running."""
        self._events.close()
        self._events = SubscriptionHub[TaskEvent]()  # the driver stays usable: later streams subscribe afresh
        await self._conn.aclose()

    # --- base plugin --------------------------------------------------------------------------------------------

    async def plugin_info(self) -> PluginInfoResponse:
        """Identity: a driver named ``virt``."""
        return PluginInfoResponse(
            type=PLUGIN_TYPE_DRIVER,
            name=PLUGIN_NAME,
            plugin_version=go_version(__version__),
            plugin_api_versions=(DRIVER_API_VERSION,),
        )

    async def config_schema(self) -> Spec:
        """The hclspec of the plugin's ``config {}`` block."""
        return CONFIG_SPEC

    async def set_config(self, config: VirtConfig | Mapping[str, Any] | bytes | Any) -> None:
        """Apply a plugin config (model, mapping or Nomad's msgpack bytes); on :class:`ConfigError` the old one
        stays."""
        parsed = VirtConfig.coerce(config)
        if parsed.emulator != self._config.emulator:
            old, self._config = self._conn, parsed
            self._conn = self._new_connection()
            await old.aclose()
        self._config = parsed
        # Named fields only: the emulator password must never reach a log line.
        logger.info(
            "virt: libvirt at %s, data_dir %s, image_paths %s",
            parsed.emulator.uri,
            parsed.data_dir,
            list(parsed.image_paths),
        )

    # --- driver: plugin level -----------------------------------------------------------------------------------

    async def task_config_schema(self) -> Spec:
        """The hclspec of a task's ``config {}`` block."""
        return TASK_CONFIG_SPEC

    async def capabilities(self) -> Capabilities:
        """As nomad-driver-virt: no signals, no exec, image filesystem isolation, host networking."""
        return CAPABILITIES

    async def _probe(self) -> DriverFingerprint:
        def read(conn: libvirt.virConnect) -> tuple[int, int, str]:
            return (
                conn.getLibVersion(),
                conn.getVersion(),
                pick_domain_type(conn.getCapabilities(), None, kvm=kvm_usable(self._config.emulator.uri)),
            )

        try:
            libvirt_version, emulator_version, domain_type = await self._conn.run(read)
        except (DriverError, libvirt.libvirtError) as exc:
            reason = self._conn.last_error or (
                exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else str(exc)
            )
            return DriverFingerprint(health=HealthState.UNDETECTED, health_description=f"libvirt unreachable: {reason}")
        return DriverFingerprint(
            attributes={
                "driver.virt": Attribute(bool_val=True),
                "driver.virt.libvirt.version": Attribute(int_val=libvirt_version),
                "driver.virt.emulator.version": Attribute(int_val=emulator_version),
                "driver.virt.accelerator": Attribute(string_val=domain_type),
            },
            health=HealthState.HEALTHY,
            health_description="Healthy",
        )

    async def fingerprint(self) -> AsyncGenerator[DriverFingerprint, None]:
        """Stream health and attributes: at once, then on every change. Checked every ``fingerprint_period`` (more
        often while libvirt is unreachable) and whenever the connection is lost or reopened."""
        last: DriverFingerprint | None = None
        while True:
            conn = self._conn
            current = await self._probe()
            if current != last:
                yield current
                last = current
            period = (
                self._fingerprint_period
                if current.health is HealthState.HEALTHY
                else min(self._fingerprint_period, 2.0)
            )
            with anyio.move_on_after(period):
                await conn.wait_changed()

    # --- events -------------------------------------------------------------------------------------------------

    def _emit(self, record: TaskRecord, message: str, err: str | None = None) -> None:
        event = TaskEvent(
            task_id=record.config.id,
            task_name=record.config.name,
            alloc_id=record.config.alloc_id,
            timestamp=datetime.now(UTC),
            message=message,
            annotations={"domain": record.state.domain},
            err=err,
        )
        self._events.publish(event)

    async def task_events(self) -> AsyncGenerator[TaskEvent, None]:
        """Stream events of every task: VM started, exited, stopped, destroyed.

        The driver never waits for the reader: one that falls 256 events behind loses the events
        that do not fit, as with Nomad's eventer, and gets those emitted once it reads again (see
        :mod:`plugin_host.plugins._task_events`).
        """
        hub = self._events
        events = hub.add(task_event_subscriber(PLUGIN_NAME, _EVENT_BUFFER))
        try:
            async for event in events:
                yield event
        finally:
            hub.detach(events)

    def _finish(self, record: TaskRecord, result: ExitResult) -> None:
        if record.finish(result):
            logger.info("virt: task %s (domain %s) exited: %s", record.config.id, record.state.domain, result)
            self._emit(record, f"VM exited with code {result.exit_code}", err=result.err)

    def _lifecycle(self, domain: str, event: int, detail: int) -> None:
        record = self._by_domain.get(domain)
        if record is None:
            return
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
            self._finish(record, exit_for_stopped_event(detail))
        elif event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED and record.exit_result is None:
            self._finish(record, vanished_exit(domain))

    async def _refresh(self, record: TaskRecord) -> None:
        """Read the domain's state from libvirt and record an exit it shows (events may have been missed)."""
        name = record.state.domain

        def read(conn: libvirt.virConnect) -> tuple[int, int] | None:
            try:
                state, reason = conn.lookupByName(name).state()
            except libvirt.libvirtError as exc:
                if _no_domain(exc):
                    return None
                raise
            return state, reason

        found = await self._conn.run(read)
        if found is None:
            self._finish(record, vanished_exit(name))
        elif found[0] == libvirt.VIR_DOMAIN_SHUTOFF:
            self._finish(record, exit_for_shutoff_reason(found[1]))
        elif found[0] == libvirt.VIR_DOMAIN_CRASHED:
            self._finish(record, exit_for_shutoff_reason(libvirt.VIR_DOMAIN_SHUTOFF_CRASHED))

    async def _reconcile_all(self) -> None:
        for record in list(self._by_domain.values()):
            if record.exit_result is None:
                try:
                    await self._refresh(record)
                except (DriverError, libvirt.libvirtError) as exc:
                    logger.warning("virt: cannot read the state of domain %s: %s", record.state.domain, exc)

    # --- tasks --------------------------------------------------------------------------------------------------

    def _record(self, task_id: str) -> TaskRecord:
        record = self._tasks.get(task_id)
        if record is None:
            raise TaskNotFoundError(f"virt: no task with id {truncated(task_id)}")
        return record

    def _paths(self, name: str) -> tuple[str, str, str]:
        base = os.path.join(self._config.data_dir, name)
        return f"{base}.qcow2", f"{base}.seed.iso", f"{base}.console.log"

    async def start_task(self, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        """Validate the task completely, then create its disk, seed and domain and boot it."""
        if config.id in self._tasks or config.id in self._starting:
            raise TaskExistsError(
                f"virt: task {truncated(config.id)} already exists; destroy it before starting it again"
            )
        try:
            task = VirtTaskConfig.parse(config.driver_config, task_id=config.id)
        except ConfigError as exc:
            raise TaskConfigError(str(exc)) from exc
        plan = await anyio.to_thread.run_sync(plan_task, task, config, self._config)
        self._starting.add(config.id)
        try:
            record = await self._create(config, plan)
        finally:
            self._starting.discard(config.id)
        self._tasks[config.id] = record
        self._emit(record, f"VM {record.state.domain} started ({record.state.domain_type})")
        handle = TaskHandle(
            version=HANDLE_VERSION, config=config, state=TaskState.RUNNING, driver_state=record.state.encode()
        )
        return handle, None

    async def _create(self, config: TaskConfig, plan: TaskPlan) -> TaskRecord:
        name = plan.domain_name
        task = plan.task
        arch = task.os.arch if task.os is not None else None

        def check(conn: libvirt.virConnect) -> str:
            try:
                conn.lookupByName(name)
            except libvirt.libvirtError as exc:
                if not _no_domain(exc):
                    raise
            else:
                raise DriverError(
                    f"virt: a libvirt domain named {name!r} already exists (task {truncated(config.id)});"
                    " recover the task or destroy the domain first"
                )
            return pick_domain_type(conn.getCapabilities(), arch, kvm=kvm_usable(self._config.emulator.uri))

        domain_type = await self._conn.run(check)
        base = await image_info(plan.image)
        await check_image_files(plan.image, base, allowed_roots(config, self._config), task_id=config.id)
        overlay_path, seed_path, console_path = self._paths(name)
        overlay = overlay_path if task.use_thin_copy else None
        record: TaskRecord | None = None
        try:
            await anyio.to_thread.run_sync(lambda: os.makedirs(self._config.data_dir, mode=0o711, exist_ok=True))
            if overlay is not None:
                await create_overlay(plan.image, base, overlay, task.primary_disk_size)
            shares = shares_for(config)
            await anyio.to_thread.run_sync(write_seed, seed_path, seed_files(plan, config, shares))
            disk = (overlay, "qcow2") if overlay is not None else (plan.image, base.format)
            spec = domain_spec(
                plan, config, shares, domain_type=domain_type, disk=disk, seed_path=seed_path, console_path=console_path
            )
            xml = domain_xml(spec)
            state = DriverState(
                domain=name,
                uuid="",
                domain_type=domain_type,
                overlay=overlay,
                seed=seed_path,
                console=console_path,
                started_at=datetime.now(UTC),
            )
            record = TaskRecord(config=config, state=state)
            # Tracked before the boot: a guest that powers off at once must still find its record.
            self._by_domain[name] = record

            def boot(conn: libvirt.virConnect) -> str:
                dom = conn.defineXML(xml)
                try:
                    dom.create()
                except libvirt.libvirtError:
                    dom.undefine()
                    raise
                return str(dom.UUIDString())

            uuid = await self._conn.run(boot, retry=False)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                if record is not None and self._by_domain.get(name) is record:
                    del self._by_domain[name]
                await anyio.to_thread.run_sync(remove_files, overlay, seed_path, console_path)
            if isinstance(exc, libvirt.libvirtError):
                raise DriverError(
                    f"virt: task {truncated(config.id)}: libvirt cannot boot domain {name!r}: {exc.get_error_message()}"
                ) from exc
            raise
        record.state = record.state.model_copy(update={"uuid": uuid})
        logger.info("virt: task %s started as domain %s (%s, %s)", config.id, name, domain_type, spec.disk_format)
        return record

    async def wait_task(self, task_id: str) -> ExitResult:
        """Wait for the VM to exit; at once when it has. Survives libvirtd restarts (it re-reads the state)."""
        record = self._record(task_id)
        in_step = True
        while record.exit_result is None:
            if not in_step:
                # The connection dropped or came back: exits during the outage reached no event handler.
                try:
                    await self._refresh(record)
                    in_step = True
                except (DriverError, libvirt.libvirtError) as exc:
                    logger.debug("virt: waiting for task %s, libvirt unreachable: %s", task_id, exc)
                    with anyio.move_on_after(1.0):
                        await record.exited.wait()
                continue
            conn = self._conn
            async with anyio.create_task_group() as tg:

                async def changed(conn: LibvirtConnection = conn, tg: anyio.abc.TaskGroup = tg) -> None:
                    await conn.wait_changed()
                    tg.cancel_scope.cancel()

                tg.start_soon(changed)
                await record.exited.wait()
                tg.cancel_scope.cancel()
            in_step = record.exit_result is not None
        result: ExitResult = record.exit_result
        return result

    async def stop_task(self, task_id: str, timeout: float, signal: str = "") -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """ACPI shutdown (the guest's power button); after ``timeout`` seconds the VM is destroyed. Idempotent."""
        record = self._record(task_id)
        if record.exit_result is not None:
            return
        name = record.state.domain

        def power_button(conn: libvirt.virConnect) -> None:
            try:
                conn.lookupByName(name).shutdown()
            except libvirt.libvirtError as exc:
                if not (_no_domain(exc) or _not_running(exc)):
                    raise

        await self._conn.run(power_button)
        with anyio.move_on_after(max(timeout, 0.0)):
            await record.exited.wait()
        if record.exit_result is not None:
            self._emit(record, "VM shut down")
            return
        logger.info("virt: task %s ignored the shutdown for %.1fs; destroying domain %s", task_id, timeout, name)
        await self._kill(record)
        self._emit(record, f"VM destroyed after ignoring the shutdown for {timeout:g}s")

    async def _kill(self, record: TaskRecord) -> None:
        name = record.state.domain

        def destroy(conn: libvirt.virConnect) -> None:
            try:
                conn.lookupByName(name).destroy()
            except libvirt.libvirtError as exc:
                if not (_no_domain(exc) or _not_running(exc)):
                    raise

        await self._conn.run(destroy)
        with anyio.move_on_after(_KILL_WAIT):
            await record.exited.wait()
        if record.exit_result is None:
            await self._refresh(record)

    async def destroy_task(self, task_id: str, force: bool = False) -> None:
        """Remove the VM: undefine the domain, delete the thin copy, seed and console log, forget the task.

        A running VM needs ``force`` (it is then powered off); without it: :class:`DriverError`.
        """
        record = self._record(task_id)
        if record.exit_result is None:
            await self._refresh(record)
        if record.exit_result is None:
            if not force:
                raise DriverError(
                    f"virt: task {truncated(task_id)} is still running; stop it first or destroy with force=True"
                )
            await self._kill(record)
        name = record.state.domain

        def undefine(conn: libvirt.virConnect) -> None:
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError as exc:
                if not _no_domain(exc):
                    raise

        await self._conn.run(undefine)
        state = record.state
        await anyio.to_thread.run_sync(remove_files, state.overlay, state.seed, state.console)
        self._tasks.pop(task_id, None)
        if self._by_domain.get(name) is record:
            del self._by_domain[name]
        self._emit(record, f"VM {name} destroyed and its files removed")

    async def inspect_task(self, task_id: str) -> TaskStatus:
        """The task's status: running or exited (with the exit)."""
        return self._record(task_id).status()

    async def recover_task(self, handle: TaskHandle) -> None:
        """Re-attach to the VM of ``handle`` from its ``driver_state`` alone; a stopped VM recovers as exited.

        The domain is gone: :class:`TaskNotFoundError`. Already tracked: nothing to do.
        """
        task_id = handle.config.id
        if task_id in self._tasks:
            return
        state = DriverState.decode(handle.driver_state, task_id=task_id)
        record = TaskRecord(config=handle.config, state=state)

        def read(conn: libvirt.virConnect) -> tuple[str, int, int] | None:
            try:
                dom = conn.lookupByName(state.domain)
            except libvirt.libvirtError as exc:
                if _no_domain(exc):
                    return None
                raise
            current, reason = dom.state()
            return str(dom.UUIDString()), current, reason

        self._by_domain[state.domain] = record
        try:
            found = await self._conn.run(read)
        except BaseException:
            del self._by_domain[state.domain]
            raise
        if found is None or (state.uuid and found[0] != state.uuid):
            del self._by_domain[state.domain]
            raise TaskNotFoundError(
                f"virt: task {truncated(task_id)}: libvirt domain {state.domain!r} ({state.uuid}) no longer exists"
            )
        _, current, reason = found
        if current == libvirt.VIR_DOMAIN_SHUTOFF:
            record.finish(exit_for_shutoff_reason(reason))
        elif current == libvirt.VIR_DOMAIN_CRASHED:
            record.finish(exit_for_shutoff_reason(libvirt.VIR_DOMAIN_SHUTOFF_CRASHED))
        self._tasks[task_id] = record
        logger.info("virt: recovered task %s (domain %s, %s)", task_id, state.domain, record.status().state)

    async def task_stats(self, task_id: str, interval: float) -> AsyncGenerator[TaskResourceUsage, None]:
        """Stream the VM's usage every ``interval`` seconds until it exits: memory in bytes, CPU in percent and
        MHz ticks, timestamps in Unix nanoseconds."""
        if not (interval > 0 and math.isfinite(interval)):
            raise DriverError(f"virt: stats interval {truncated(interval)} must be a positive number of seconds")
        record = self._record(task_id)
        previous: Sample | None = None
        while record.exit_result is None:
            try:
                sample = await self._conn.run(lambda conn: sample_domain(conn, record.state.domain))
            except libvirt.libvirtError as exc:
                if record.exit_result is not None or _no_domain(exc) or _not_running(exc):
                    return
                raise DriverError(
                    f"virt: task {truncated(task_id)}: cannot read stats: {exc.get_error_message()}"
                ) from exc
            yield usage_between(previous, sample)
            previous = sample
            with anyio.move_on_after(interval):
                await record.exited.wait()

    async def signal_task(self, task_id: str, signal: str) -> None:
        """Not supported: VMs take no signals."""
        self._record(task_id)
        raise DriverError(
            f"virt: the virt driver cannot send signals (task {truncated(task_id)}, signal {truncated(signal)})"
        )

    async def exec_task(self, task_id: str, command: Sequence[str], timeout: float) -> ExecTaskResult:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Not supported: the virt driver has no exec."""
        self._record(task_id)
        raise DriverError(f"virt: the virt driver cannot exec in a task (task {truncated(task_id)})")
