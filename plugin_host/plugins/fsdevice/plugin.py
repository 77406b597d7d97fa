"""The reference filesystem device plugin: every file in a directory is a device (Nomad's example fs-device).

Streams are async generators that do their work only while they are iterated: a scan happens between two
messages, in a worker thread, and nothing runs in the background. Leaving the ``async for`` loop therefore stops
the scanning, with nothing to cancel or clean up.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread

from plugin_host._text import truncated
from plugin_host._version import __version__, go_version
from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PluginInfoResponse
from plugin_host.base.hclspec import Spec
from plugin_host.base.structs import Attribute, StatObject, StatValue
from plugin_host.config.durations import format_duration
from plugin_host.device.api import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceGroupStats,
    DeviceStats,
    FingerprintResponse,
    Mount,
    StatsResponse,
)
from plugin_host.errors import ConfigError, DeviceError
from plugin_host.plugins.fsdevice._scan import FileStat, Snapshot, scan_devices, stat_devices
from plugin_host.plugins.fsdevice.config import CONFIG_SPEC, FsDeviceConfig

__all__ = ["API_VERSION", "DEVICE_NAME", "DEVICE_TYPE", "PLUGIN_NAME", "VENDOR", "FsDevice"]

logger = logging.getLogger(__name__)

PLUGIN_NAME = "fs-device"
VENDOR = "nomad"
DEVICE_TYPE = "file"
DEVICE_NAME = "mock"
API_VERSION = "v0.1.0"
TASK_MOUNT_DIR = "/tmp/task-mounts"

_GROUP_ATTRIBUTES = {"cool-attribute": Attribute(string_val="attribute-wearing-sunglasses")}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class _Settings:
    config: FsDeviceConfig
    directory: str  # absolute, fixed when the config is set so scans and mounts agree


def _settings_for(config: FsDeviceConfig) -> _Settings:
    directory = os.path.abspath(config.dir)
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        logger.info(
            "fs-device: device directory %s does not exist yet; it is rescanned every %s",
            directory,
            format_duration(config.list_period),
        )
        return _Settings(config, directory)
    except NotADirectoryError as exc:
        raise ConfigError(f"fs-device config: dir {truncated(config.dir)} is not a directory: {exc.strerror}") from exc
    except OSError:
        # Unreadable now may be readable later; fingerprint reports it.
        return _Settings(config, directory)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"fs-device config: dir {truncated(config.dir)} exists but is a {stat.filemode(st.st_mode)[0]!r} file,"
            " not a directory; expected the directory whose files are the devices"
        )
    return _Settings(config, directory)


def _device_for(device_id: str, healthy: bool, unhealthy_desc: str) -> Device:
    return Device(id=device_id, healthy=healthy, health_description="" if healthy else unhealthy_desc)


def _stat_object(info: FileStat) -> tuple[StatValue, StatObject]:
    size = StatValue(int_numerator_val=info.size, unit="bytes", desc="Filesize in bytes")
    attributes = {
        "size": size,
        "modify_time": StatValue(string_val=info.modify_time, desc="Last modified"),
        "mode": StatValue(string_val=info.mode, desc="File mode"),
    }
    return size, StatObject(attributes=attributes)


class _StatsCache:
    """What one stats stream derived from each file last time: its stat, and the summary and stat tree built from
    it (reused while the file's size, modification time and mode stay the same)."""

    __slots__ = ("built", "files")

    def __init__(self) -> None:
        self.files: dict[str, FileStat] = {}
        self.built: dict[str, tuple[FileStat, StatValue, StatObject]] = {}


def _collect_stats(directory: str, ids: list[str], now: datetime, cache: _StatsCache) -> DeviceGroupStats | None:
    """Stat the devices and build their statistics (in a worker thread: 10,000 devices are 10,000 models).

    Only a changed file's stat tree is built again; each device gets a new ``DeviceStats`` for the timestamp.
    """
    infos = stat_devices(directory, ids, cache.files)
    cache.files = infos
    if not infos:
        return None
    built: dict[str, tuple[FileStat, StatValue, StatObject]] = {}
    previous = cache.built
    instance_stats: dict[str, DeviceStats] = {}
    for device_id, info in infos.items():
        entry = previous.get(device_id)
        if entry is None or entry[0] is not info:
            entry = (info, *_stat_object(info))
        built[device_id] = entry
        instance_stats[device_id] = DeviceStats(summary=entry[1], stats=entry[2], timestamp=now)
    cache.built = built
    return DeviceGroupStats(vendor=VENDOR, type=DEVICE_TYPE, name=DEVICE_NAME, instance_stats=instance_stats)


class FsDevice:
    """Exposes the files of a directory as devices ``nomad/file/mock``; implements :class:`DevicePlugin`.

    ``config`` may be given here or later with :meth:`set_config`; nothing is scanned until a stream is iterated
    or :meth:`reserve` is called.
    """

    def __init__(self, config: FsDeviceConfig | Mapping[str, Any] | bytes | None = None) -> None:
        self._settings: _Settings | None = None
        if config is not None:
            self._settings = _settings_for(FsDeviceConfig.coerce(config))
        self._detected: Snapshot = {}
        self._fingerprinting = 0

    @property
    def config(self) -> FsDeviceConfig | None:
        """The configuration in effect, or None before one was set."""
        return self._settings.config if self._settings is not None else None

    async def plugin_info(self) -> PluginInfoResponse:
        """Identity: a device plugin named ``fs-device`` speaking device API v0.1.0."""
        return PluginInfoResponse(
            type=PLUGIN_TYPE_DEVICE,
            name=PLUGIN_NAME,
            plugin_version=go_version(__version__),
            plugin_api_versions=(API_VERSION,),
        )

    async def config_schema(self) -> Spec:
        """The hclspec of the ``config {}`` block: ``dir``, ``list_period`` and ``unhealthy_perm`` with defaults."""
        return CONFIG_SPEC

    async def set_config(self, config: FsDeviceConfig | Mapping[str, Any] | bytes | Any) -> None:
        """Apply a config (model, mapping or Nomad's msgpack bytes); on :class:`ConfigError` the old one stays.

        Running streams pick up the new directory and period at their next scan.
        """
        parsed = FsDeviceConfig.coerce(config)
        self._settings = await anyio.to_thread.run_sync(_settings_for, parsed)
        # Named fields only: a plugin config can carry secrets, so it is never logged whole.
        logger.info("fs-device: watching %s every %s", parsed.dir, parsed.model_dump()["list_period"])

    def _require_settings(self) -> _Settings:
        if self._settings is None:
            raise DeviceError("fs-device: device directory not set in config; call set_config() first")
        return self._settings

    def _group(self, snapshot: Snapshot, cache: dict[str, Device], settings: _Settings) -> DeviceGroup:
        unhealthy_desc = f"Device has bad permissions {_quote(settings.config.unhealthy_perm)}"
        devices: list[Device] = []
        for device_id in sorted(snapshot):
            healthy = snapshot[device_id]
            device = cache.get(device_id)
            if device is None or device.healthy is not healthy:
                device = cache[device_id] = _device_for(device_id, healthy, unhealthy_desc)
            devices.append(device)
        for gone in cache.keys() - snapshot.keys():
            del cache[gone]
        return DeviceGroup(
            vendor=VENDOR, type=DEVICE_TYPE, name=DEVICE_NAME, devices=tuple(devices), attributes=_GROUP_ATTRIBUTES
        )

    async def fingerprint(self) -> AsyncGenerator[FingerprintResponse, None]:
        """Stream the device group: at once, then after every scan that finds a change.

        A directory that cannot be listed yields one error message (until the error changes); scanning goes on
        and the devices are sent again once the directory can be listed.
        """
        settings = self._require_settings()
        self._fingerprinting += 1
        logger.debug("fs-device: fingerprint stream started")
        try:
            sent_settings: _Settings | None = None
            sent_snapshot: Snapshot | None = None
            sent_error: str | None = None
            cache: dict[str, Device] = {}
            while True:
                settings = self._settings or settings
                if settings is not sent_settings:
                    cache.clear()
                started = anyio.current_time()
                logger.debug("fs-device: scanning %s", settings.directory)
                try:
                    snapshot = await anyio.to_thread.run_sync(
                        scan_devices, settings.directory, settings.config.unhealthy_perm
                    )
                except OSError as exc:
                    self._detected = {}
                    error = (
                        f"fs-device: cannot list device directory {_quote(settings.directory)}:"
                        f" {exc.strerror or exc}; rescanning every {format_duration(settings.config.list_period)}"
                    )
                    if error != sent_error or settings is not sent_settings:
                        logger.warning("%s", error)
                        sent_settings, sent_snapshot, sent_error = settings, None, error
                        yield FingerprintResponse(error=error)
                else:
                    self._detected = snapshot
                    if snapshot != sent_snapshot or settings is not sent_settings:
                        group = self._group(snapshot, cache, settings)
                        sent_settings, sent_snapshot, sent_error = settings, snapshot, None
                        yield FingerprintResponse(device_group=group)
                await anyio.sleep_until(started + settings.config.list_period)
        finally:
            self._fingerprinting -= 1
            logger.debug("fs-device: fingerprint stream stopped")

    async def _current_devices(self, settings: _Settings) -> Snapshot:
        """The devices a running fingerprint stream last saw, or a fresh scan when none is running."""
        if self._fingerprinting:
            return self._detected
        try:
            return await anyio.to_thread.run_sync(scan_devices, settings.directory, settings.config.unhealthy_perm)
        except OSError as exc:
            logger.debug("fs-device: cannot list %s: %s", settings.directory, exc)
            return {}

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        """Mount each device's file at ``/tmp/task-mounts/<id>`` in the task, read-write.

        Raises :class:`DeviceError` naming the id for no ids, a malformed id, a repeated id or an id that is not
        currently detected; nothing is reserved then.
        """
        settings = self._require_settings()
        if isinstance(device_ids, str):
            raise DeviceError(f"fs-device: reserve takes a sequence of device ids, not the string {_quote(device_ids)}")
        ids = list(device_ids)
        if not ids:
            raise DeviceError("fs-device: no device ids given; expected at least one detected device id")
        seen: set[str] = set()
        for device_id in ids:
            if not isinstance(device_id, str) or device_id in ("", ".", "..") or "/" in device_id or "\0" in device_id:
                raise DeviceError(
                    f"fs-device: invalid device id {_quote(str(device_id))}; expected a file name in the device"
                    " directory (not empty, no '/', not '..')"
                )
            if device_id in seen:
                raise DeviceError(f"fs-device: device {_quote(device_id)} is listed twice; each device once")
            seen.add(device_id)
        detected = await self._current_devices(settings)
        for device_id in ids:
            if device_id not in detected:
                known = ", ".join(sorted(detected)[:10]) or "none"
                raise DeviceError(f"unknown device {_quote(device_id)}; detected devices: {known}")
        return ContainerReservation(
            mounts=tuple(
                Mount(
                    task_path=f"{TASK_MOUNT_DIR}/{device_id}",
                    host_path=os.path.join(settings.directory, device_id),
                    read_only=False,
                )
                for device_id in ids
            )
        )

    async def stats(self, interval: float) -> AsyncGenerator[StatsResponse, None]:
        """Stream per-device file statistics: at once, then every ``interval`` seconds.

        Files that vanished since the last scan are left out; with no devices nothing is sent.
        """
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise DeviceError(
                f"fs-device: stats interval must be a positive number of seconds; got {truncated(interval)}"
            )
        settings = self._require_settings()
        logger.debug("fs-device: stats stream started")
        cache, cache_settings = _StatsCache(), settings
        try:
            while True:
                settings = self._settings or settings
                started = anyio.current_time()
                logger.debug("fs-device: collecting stats in %s", settings.directory)
                ids = sorted(await self._current_devices(settings))
                if settings is not cache_settings:
                    cache, cache_settings = _StatsCache(), settings
                if ids:
                    now = datetime.now(UTC)
                    group = await anyio.to_thread.run_sync(_collect_stats, settings.directory, ids, now, cache)
                    if group is not None:
                        yield StatsResponse(groups=(group,))
                await anyio.sleep_until(started + interval)
        finally:
            logger.debug("fs-device: stats stream stopped")
