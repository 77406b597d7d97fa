"""Configuration of the raw-exec driver (its ``plugin "raw-exec" { config {} }`` block) and of its tasks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from plugin_host.base import hclspec
from plugin_host.config.validation import ConfigModel, ConfigPath, decode_msgpack_config
from plugin_host.errors import ConfigError

__all__ = ["CONFIG_SPEC", "TASK_CONFIG_SPEC", "RawExecConfig"]


class RawExecConfig(ConfigModel):
    """Where the driver keeps its executors' status files (one small JSON file per task)."""

    state_dir: ConfigPath | None = None
    """Directory for the status files; default ``$TMPDIR/plugin-host-raw-exec-<uid>``."""

    @classmethod
    def config_source(cls) -> str:
        """How error messages name this config."""
        return "raw-exec config"

    @property
    def state_path(self) -> Path:
        """The status file directory, with the default filled in."""
        if self.state_dir:
            return Path(self.state_dir)
        return Path(tempfile.gettempdir()) / f"plugin-host-raw-exec-{os.getuid()}"

    @classmethod
    def coerce(cls, config: RawExecConfig | Mapping[str, Any] | bytes | bytearray | memoryview) -> Self:
        """Accept a config model, a mapping, or the msgpack bytes Nomad sends in SetConfig."""
        if isinstance(config, cls):
            return config
        if isinstance(config, bytes | bytearray | memoryview):
            config = decode_msgpack_config(bytes(config), cls, source=cls.config_source())
        if isinstance(config, Mapping):
            return cls.from_mapping(config)
        raise ConfigError(
            f"raw-exec config: expected RawExecConfig, a mapping or msgpack bytes; got {type(config).__name__}"
        )


CONFIG_SPEC = hclspec.obj({"state_dir": hclspec.attr("state_dir", "string")})
"""The hclspec of the driver's ``config {}`` block."""

TASK_CONFIG_SPEC = hclspec.obj(
    {
        "command": hclspec.attr("command", "string", required=True),
        "args": hclspec.attr("args", "list(string)"),
    }
)
"""The hclspec of a task's ``config {}`` block: ``command`` and its ``args``."""
