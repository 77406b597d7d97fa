"""Configuration of the filesystem device plugin: the ``config {}`` block of upstream's example fs-device."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

import msgpack
from pydantic import AfterValidator, ValidationInfo

from plugin_host._text import truncated
from plugin_host.base import hclspec
from plugin_host.config.durations import PositiveDuration, at_least
from plugin_host.config.hcl import load_hcl_file, single_block
from plugin_host.config.validation import ConfigModel, ConfigPath, decode_msgpack_config
from plugin_host.errors import ConfigError

__all__ = ["CONFIG_SPEC", "MIN_LIST_PERIOD", "FsDeviceConfig", "PermissionString"]

# The ten characters `ls -l` prints: file type, then owner/group/other triplets (with setuid/setgid/sticky).
_PERM_RE = re.compile(r"[-dlcbps?][r-][w-][xsS-][r-][w-][xsS-][r-][w-][xtT-]")


def _check_perm(value: str, info: ValidationInfo) -> str:
    if not _PERM_RE.fullmatch(value):
        raise ConfigError(
            f"{info.field_name}: {truncated(value)} is not a permission string as `ls -l` prints it; expected "
            f"10 characters"
            ' such as "-rwxrwxrwx" or "-rw-r--r--"'
        )
    return value


PermissionString = Annotated[str, AfterValidator(_check_perm)]
"""A file mode as ``ls -l`` (and :func:`stat.filemode`) prints it, e.g. ``"-rw-r--r--"``."""

MIN_LIST_PERIOD = 0.01
"""The shortest ``list_period``: 10ms, at most 100 scans a second.

Upstream's example plugin (nomad plugins/device/cmd/example/device.go, SetConfig) takes any Go duration, so "1ns"
rescans back to back and burns a core. 10ms costs a few percent of a core on a directory of 100 files (measured
with ``plugin-host run``), is still far faster than anything needs (the default is 5s, the scan benchmark uses
100ms, tests use 20ms to stay quick), and refuses the typo that costs a whole core. It does not bound a huge
directory: a scan of 10,000 files takes about 27ms (README benchmarks), so a period that short rescans back to back.
"""


class FsDeviceConfig(ConfigModel):
    """Where the fs-device looks for files, how often it rescans, and which permissions mark a file unhealthy."""

    dir: ConfigPath = "."
    """Directory whose regular files are the devices; relative paths are relative to the working directory."""
    list_period: Annotated[PositiveDuration, at_least(MIN_LIST_PERIOD)] = 5.0
    """Seconds between scans of ``dir``; written as a Go duration (``"5s"``), at least ``"10ms"``."""
    unhealthy_perm: PermissionString = "-rwxrwxrwx"
    """A file whose mode prints as this string is reported unhealthy."""

    @classmethod
    def config_source(cls) -> str:
        """How error messages name this config."""
        return "fs-device config"

    @classmethod
    def from_hcl_file(cls, path: str | os.PathLike[str]) -> Self:
        """Load a file whose only top-level block is ``config { ... }``; no block means the defaults."""
        source = os.fspath(path)
        data = load_hcl_file(path)
        unknown = sorted(set(data) - {"config"})
        if unknown:
            raise ConfigError(f"{source}: unknown top-level key {truncated(unknown[0])}; allowed: config")
        body = single_block(data, "config", source=source)
        return cls.from_mapping(body or {}, source=source)

    @classmethod
    def from_msgpack(cls, payload: bytes) -> Self:
        """Decode the msgpack map Nomad sends in ``SetConfig``; missing keys take their defaults."""
        data = decode_msgpack_config(payload, cls, source=cls.config_source())
        return cls.from_mapping(data, source="fs-device config (msgpack)")

    @classmethod
    def coerce(cls, config: FsDeviceConfig | Mapping[str, Any] | bytes | bytearray | memoryview) -> Self:
        """Accept a config model, a mapping of keys, or msgpack bytes."""
        if isinstance(config, cls):
            return config
        if isinstance(config, FsDeviceConfig):
            return cls.from_mapping(config.model_dump())
        if isinstance(config, bytes | bytearray | memoryview):
            return cls.from_msgpack(bytes(config))
        if isinstance(config, Mapping):
            return cls.from_mapping(config)
        raise ConfigError(
            f"fs-device config: expected FsDeviceConfig, a mapping or msgpack bytes; got {type(config).__name__}"
        )

    def to_msgpack(self) -> bytes:
        """The msgpack map Nomad would send for this config (durations as Go strings)."""
        packed: bytes = msgpack.packb(self.model_dump(), use_bin_type=True)
        return packed


CONFIG_SPEC = hclspec.obj(
    {
        "dir": hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')),
        "list_period": hclspec.default(hclspec.attr("list_period", "string"), hclspec.literal('"5s"')),
        "unhealthy_perm": hclspec.default(hclspec.attr("unhealthy_perm", "string"), hclspec.literal('"-rwxrwxrwx"')),
    }
)
"""The hclspec of the ``config {}`` block, as upstream's ``configSpec``."""
