"""Configuration models of the virt driver: the plugin's ``config {}`` block and a task's ``config {}`` block.

The shapes follow nomad-driver-virt. Models only check types and shapes; the cross-field and filesystem checks
(image allow-list, hostname, resources) live in :mod:`._validate` so that all problems are reported together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import Field, SecretStr, field_validator

from plugin_host._text import truncated
from plugin_host.base import hclspec
from plugin_host.config.validation import ConfigModel, ConfigPath, decode_msgpack_config, msgpack_text
from plugin_host.errors import ConfigError

__all__ = [
    "CONFIG_SPEC",
    "DEFAULT_DATA_DIR",
    "DEFAULT_URI",
    "TASK_CONFIG_SPEC",
    "BridgeConfig",
    "EmulatorConfig",
    "NetworkInterfaceConfig",
    "OsConfig",
    "VirtConfig",
    "VirtTaskConfig",
]

DEFAULT_URI = "qemu:///system"
DEFAULT_DATA_DIR = "/var/lib/virt"


def _one_block(value: Any) -> Any:
    # HCL parsers hand a block over as a list holding one mapping; msgpack from Nomad as the mapping itself.
    if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], Mapping):
        return value[0]
    return value


def _secret_text(value: Any, field: str) -> Any:
    # The generic validation message quotes the input; a secret must not reach it, so refuse here without it.
    if value is None or isinstance(value, str | SecretStr):
        return value
    raise ConfigError(f"{field}: expected a string; got a {type(value).__name__} (value not shown)")


class EmulatorConfig(ConfigModel):
    """How to reach libvirt: the connection URI and, for URIs that ask for them, credentials."""

    uri: str = DEFAULT_URI
    user: str | None = None
    password: SecretStr | None = None
    """Never logged, never shown in a repr or an error message."""

    @field_validator("password", mode="before")
    @classmethod
    def _password_text(cls, value: Any) -> Any:
        return _secret_text(value, "virt config emulator.password")

    @field_validator("uri")
    @classmethod
    def _uri_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ConfigError(
                f"virt config emulator.uri: {truncated(value)} is empty; expected a libvirt URI such as {DEFAULT_URI!r}"
            )
        return value


class VirtConfig(ConfigModel):
    """The virt plugin's ``config {}`` block."""

    emulator: EmulatorConfig = EmulatorConfig()
    data_dir: ConfigPath = DEFAULT_DATA_DIR
    """Where thin copies, cloud-init seeds and console logs of the VMs are written."""
    image_paths: tuple[ConfigPath, ...] = ()
    """Directories images may be loaded from, besides ``data_dir`` and the task's allocation directory."""

    @field_validator("emulator", mode="before")
    @classmethod
    def _emulator_block(cls, value: Any) -> Any:
        return _one_block(value)

    @field_validator("data_dir")
    @classmethod
    def _data_dir_not_empty(cls, value: str) -> str:
        if not value:
            raise ConfigError("virt config data_dir: is empty; expected a directory path")
        return value

    @field_validator("image_paths")
    @classmethod
    def _image_paths_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path:
                raise ConfigError("virt config image_paths: contains an empty path; expected directory paths")
        return value

    @classmethod
    def config_source(cls) -> str:
        """How error messages name this config."""
        return "virt config"

    @classmethod
    def coerce(cls, config: VirtConfig | Mapping[str, Any] | bytes | bytearray | memoryview | None) -> Self:
        """Accept a config model, a mapping of keys, Nomad's msgpack bytes, or None (the defaults)."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, VirtConfig):
            return cls.from_mapping(config.model_dump())
        if isinstance(config, bytes | bytearray | memoryview):
            # Nomad sends nil for every attribute (and block) its agent config left unset: those take the defaults.
            data = decode_msgpack_config(bytes(config), cls, source=cls.config_source())
            return cls.from_mapping(data, source="virt config (msgpack)")
        if isinstance(config, Mapping):
            return cls.from_mapping(msgpack_text(config))
        raise ConfigError(f"virt config: expected VirtConfig, a mapping or msgpack bytes; got {type(config).__name__}")


class OsConfig(ConfigModel):
    """The guest's architecture and machine type; libvirt's defaults when unset."""

    arch: str | None = None
    machine: str | None = None


class BridgeConfig(ConfigModel):
    """Attach the VM to a host bridge; ``ports`` are the job's port labels to expose."""

    name: str = ""
    ports: tuple[str, ...] = ()


class NetworkInterfaceConfig(ConfigModel):
    """One ``network_interface`` block."""

    bridge: BridgeConfig | None = None

    @field_validator("bridge", mode="before")
    @classmethod
    def _bridge_block(cls, value: Any) -> Any:
        return _one_block(value)


class VirtTaskConfig(ConfigModel):
    """A task's ``config {}`` block for the virt driver (nomad-driver-virt's task config)."""

    image: ConfigPath
    """Disk image to boot: absolute, or relative to the task directory."""
    hostname: str | None = None
    os: OsConfig | None = None
    user_data: str | None = Field(default=None, repr=False)
    """cloud-init user-data: a path to a file (absolute, or relative to the task directory), or inline content
    starting with ``#`` (``#cloud-config``, ``#!/bin/sh``, ...). Not in the repr: it often carries credentials."""
    timezone: str | None = None
    cmds: tuple[str, ...] = Field(default=(), repr=False)
    """Commands cloud-init runs at first boot. Not in the repr nor echoed in errors: they often carry credentials."""
    default_user_authorized_ssh_key: str | None = None
    default_user_password: SecretStr | None = None

    @field_validator("default_user_password", mode="before")
    @classmethod
    def _password_text(cls, value: Any) -> Any:
        return _secret_text(value, "default_user_password")

    use_thin_copy: bool = False
    primary_disk_size: int | None = Field(default=None)
    """Size of the primary disk in MB (a thin copy is never smaller than its base image)."""
    network_interface: tuple[NetworkInterfaceConfig, ...] = ()

    @field_validator("os", mode="before")
    @classmethod
    def _os_block(cls, value: Any) -> Any:
        return _one_block(value)

    @field_validator("network_interface", mode="before")
    @classmethod
    def _interfaces(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return [value]
        return value

    @classmethod
    def config_source(cls) -> str:
        """How error messages name this config."""
        return "virt task config"

    @classmethod
    def parse(cls, data: Mapping[str, Any] | bytes | Sequence[Any] | None, *, task_id: str) -> Self:
        """Decode a task's ``driver_config`` (a mapping, or msgpack bytes)."""
        source = f"virt task config of task {truncated(task_id)}"
        if isinstance(data, bytes | bytearray | memoryview):
            return cls.from_mapping(decode_msgpack_config(bytes(data), cls, source=source), source=source)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of config keys; got {type(data).__name__}")
        return cls.from_mapping(msgpack_text(data), source=source)


_NET_SPEC = hclspec.block_list(
    "network_interface",
    hclspec.obj(
        {
            "bridge": hclspec.block(
                "bridge",
                hclspec.obj(
                    {"name": hclspec.attr("name", "string", True), "ports": hclspec.attr("ports", "list(string)")}
                ),
            )
        }
    ),
)

CONFIG_SPEC = hclspec.obj(
    {
        "emulator": hclspec.block(
            "emulator",
            hclspec.obj(
                {
                    "uri": hclspec.default(hclspec.attr("uri", "string"), hclspec.literal(f'"{DEFAULT_URI}"')),
                    "user": hclspec.attr("user", "string"),
                    "password": hclspec.attr("password", "string"),
                }
            ),
        ),
        "data_dir": hclspec.default(hclspec.attr("data_dir", "string"), hclspec.literal(f'"{DEFAULT_DATA_DIR}"')),
        "image_paths": hclspec.attr("image_paths", "list(string)"),
    }
)
"""The hclspec of the plugin's ``config {}`` block."""

TASK_CONFIG_SPEC = hclspec.obj(
    {
        "image": hclspec.attr("image", "string", True),
        "hostname": hclspec.attr("hostname", "string"),
        "os": hclspec.block(
            "os", hclspec.obj({"arch": hclspec.attr("arch", "string"), "machine": hclspec.attr("machine", "string")})
        ),
        "user_data": hclspec.attr("user_data", "string"),
        "timezone": hclspec.attr("timezone", "string"),
        "cmds": hclspec.attr("cmds", "list(string)"),
        "default_user_authorized_ssh_key": hclspec.attr("default_user_authorized_ssh_key", "string"),
        "default_user_password": hclspec.attr("default_user_password", "string"),
        "use_thin_copy": hclspec.attr("use_thin_copy", "bool"),
        "primary_disk_size": hclspec.attr("primary_disk_size", "number"),
        "network_interface": _NET_SPEC,
    }
)
"""The hclspec of a task's ``config {}`` block."""
