"""The host's configuration: where state and sockets live, and which plugins run (the shape of Nomad's agent config).

```hcl
state_dir = "state"            # state file <state_dir>/plugin-host.db, admin socket <state_dir>/plugin-host.sock
run_dir   = "state/run"        # sockets of the plugins the host serves (default <state_dir>/run)
plugin "fs-device" {
  config { dir = "examples/devices" }
}
```

Relative paths are relative to the working directory. Built-in plugins have their ``config {}`` validated here, so
a bad value fails when the file is loaded, naming the plugin and the key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator

from plugin_host._text import truncated
from plugin_host.config.hcl import labeled_blocks, load_hcl_file, single_block
from plugin_host.config.listen import ListenAddress
from plugin_host.config.validation import CommandArgument, ConfigModel, ConfigPath
from plugin_host.errors import ConfigError
from plugin_host.loader.catalog import BUILTIN_PLUGINS

__all__ = [
    "HostConfig",
    "KubeletConfig",
    "KubeletServerConfig",
    "PluginConfig",
    "PluginsRegistryConfig",
    "TelemetryConfig",
]

"""Plugins that run inside the host, by name, with the model of their ``config {}`` block."""

STATE_FILE_NAME = "plugin-host.db"
ADMIN_SOCKET_NAME = "plugin-host.sock"

_TOP_LEVEL = (
    *("admin_socket", "kubelet", "kubelet_server", "plugin", "plugin_dir", "plugins_registry", "run_dir"),
    "telemetry",
)
_TOP_LEVEL_KEYS = tuple(sorted((*_TOP_LEVEL, "state_dir")))
_BLOCKS = ("kubelet", "kubelet_server", "plugins_registry", "telemetry")
_PLUGIN_KEYS = ("args", "config")


_NESTED = ConfigDict(frozen=True, extra="forbid")


class PluginConfig(BaseModel):
    """One ``plugin "NAME" { args = [...]  config { ... } }`` block."""

    model_config = _NESTED

    args: tuple[CommandArgument, ...] = ()
    """Command-line arguments of an external plugin's executable."""
    config: dict[str, Any] = {}
    """The ``config {}`` block as a plain mapping, handed to the plugin's ``set_config``."""


class PluginsRegistryConfig(BaseModel):
    """``plugins_registry { dir = ... }``: where CSI drivers register kubelet-style (``pluginregistration.v1``).

    A :class:`~plugin_host.csi.PluginWatcher` watches the directory (created 0755 if missing): each registration
    socket in it that announces a ``CSIPlugin`` becomes a ``csi-node`` plugin of the registry (alloc id
    ``plugins-registry:<socket path>``), supervised by the host's CsiManager; removing the socket deregisters it.
    """

    model_config = _NESTED

    dir: ConfigPath


class KubeletConfig(BaseModel):
    """``kubelet { plugin_dir, namespace }``: serve the host's built-in device plugins to a kubelet.

    Each device group of each built-in plugin (fs-device) becomes the resource
    ``<namespace>/<vendor>-<type>-<name>`` (``example.com/nomad-file-mock``), served on
    ``<plugin_dir>/<namespace>-<vendor>-<type>-<name>.sock`` and registered with the kubelet on
    ``<plugin_dir>/kubelet.sock``; Allocate reserves through the plugin.
    """

    model_config = _NESTED

    plugin_dir: ConfigPath = "/var/lib/kubelet/device-plugins"
    namespace: str


class KubeletServerConfig(BaseModel):
    """``kubelet_server { plugin_dir }``: act as a kubelet for Kubernetes device plugins.

    The host serves kubelet's registration API on ``<plugin_dir>/kubelet.sock``; each plugin that registers is a
    ``device`` plugin of the registry (name = its resource name, alloc id ``"kubelet"``) run by the DeviceManager.
    """

    model_config = _NESTED

    plugin_dir: ConfigPath


class TelemetryConfig(BaseModel):
    """``telemetry { prometheus_listen = "127.0.0.1:9464" }``: serve Prometheus metrics at ``/metrics`` there.

    Named after Nomad's ``telemetry`` block. The endpoint has no authentication: it binds only the address given,
    and an address other than loopback exposes plugin and device names to whoever can reach it.
    """

    model_config = _NESTED

    prometheus_listen: ListenAddress


class HostConfig(ConfigModel):
    """Everything ``PluginHost`` needs; load it with :meth:`from_hcl_file`, :meth:`from_mapping` or :meth:`default`."""

    state_dir: ConfigPath = "state"
    """Directory of the state file (``plugin-host.db``) and, by default, the admin socket."""
    run_dir: ConfigPath = ""
    """Directory (created 0700) of the sockets of the plugins the host serves; empty means ``<state_dir>/run``."""
    plugin_dir: ConfigPath | None = None
    """Directory of external plugin executables, each launched as a go-plugin device plugin named after its file."""
    admin_socket: ConfigPath = ""
    """The admin socket ``plugin-host status`` talks to; empty means ``<state_dir>/plugin-host.sock``."""
    plugins: dict[str, PluginConfig] = {}
    """Configured plugins by name."""
    plugins_registry: PluginsRegistryConfig | None = None
    kubelet: KubeletConfig | None = None
    kubelet_server: KubeletServerConfig | None = None
    telemetry: TelemetryConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _derived_paths(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        state_dir = data.get("state_dir", "state")
        if not isinstance(state_dir, str):
            return data
        filled = dict(data)
        _check_nested_keys(filled)
        if "\x00" in state_dir:
            return filled  # refused by state_dir's own check; deriving would report the same byte three times
        if not filled.get("run_dir"):
            filled["run_dir"] = os.path.join(state_dir, "run")
        if not filled.get("admin_socket"):
            filled["admin_socket"] = os.path.join(state_dir, ADMIN_SOCKET_NAME)
        return filled

    @model_validator(mode="after")
    def _check_plugins(self) -> Self:
        for name, plugin in self.plugins.items():
            if not name:
                raise ConfigError('plugin: the label must be a non-empty plugin name, as in plugin "fs-device" {}')
            builtin = BUILTIN_PLUGINS.get(name)
            model = builtin.config if builtin is not None else None
            if model is not None:
                # Validated now so a bad value fails at load time, naming the plugin and the key.
                model.from_mapping(plugin.config, source=f'plugin "{name}" config')
            elif self.plugin_dir is None:
                raise ConfigError(
                    f'plugin "{name}" is not a built-in plugin (built-ins: {", ".join(sorted(BUILTIN_PLUGINS))})'
                    " and no plugin_dir is set to find an external plugin executable"
                )
        return self

    @classmethod
    def config_source(cls) -> str:
        """How error messages name this config."""
        return "host config"

    @classmethod
    def default(cls) -> Self:
        """The configuration used without a config file.

        State under ``state/`` and the built-in fs-device with its own defaults (files of the working directory
        are its devices, rescanned every 5s), as upstream's example plugin behaves with an empty ``config {}``.
        """
        return cls(plugins={"fs-device": PluginConfig()})

    @classmethod
    def from_hcl_file(cls, path: str | os.PathLike[str]) -> Self:
        """Load an HCL host config; every problem is a :class:`ConfigError` naming the file and the key."""
        source = os.fspath(path)
        data = load_hcl_file(path)
        return cls.from_mapping(_from_hcl(data, source), source=source)

    def check_paths(self, *, source: str | None = None) -> None:
        """Refuse a directory key whose path exists but is not a directory, or leads through a file.

        Missing directories are fine (the host creates them); anything else would fail later with a bare
        ``[Errno 20] Not a directory`` naming neither the key nor the config. Raises :class:`ConfigError` naming the
        key (``kubelet_server.plugin_dir: '/x' is a file; expected a directory``) after ``source`` (the config
        file, when known).
        """
        directories: list[tuple[str, str]] = [
            ("state_dir", self.state_dir),
            ("run_dir", self.run_dir),
            ("admin_socket", os.path.dirname(self.admin_socket) or "."),
        ]
        if self.plugin_dir is not None:
            directories.append(("plugin_dir", self.plugin_dir))
        if self.plugins_registry is not None:
            directories.append(("plugins_registry.dir", self.plugins_registry.dir))
        if self.kubelet is not None:
            directories.append(("kubelet.plugin_dir", self.kubelet.plugin_dir))
        if self.kubelet_server is not None:
            directories.append(("kubelet_server.plugin_dir", self.kubelet_server.plugin_dir))
        for key, directory in directories:
            problem = _not_a_directory(directory)
            if problem:
                shown = f"{key} (its directory {directory!r})" if key == "admin_socket" else key
                raise ConfigError(f"{source or self.config_source()}: {shown}: {problem}; expected a directory")

    @property
    def state_file(self) -> Path:
        """The SQLite state file, ``<state_dir>/plugin-host.db``."""
        return Path(self.state_dir) / STATE_FILE_NAME

    @property
    def admin_socket_path(self) -> Path:
        """The admin socket, absolute (relative paths resolve against the working directory)."""
        return Path(self.admin_socket).absolute()

    @property
    def run_path(self) -> Path:
        """The directory of plugin sockets, absolute."""
        return Path(self.run_dir).absolute()


def _kind(mode: int) -> str:
    return "a file" if stat.S_ISREG(mode) else f"not a directory ({stat.filemode(mode)})"


def _not_a_directory(directory: str) -> str:
    """Why ``directory`` cannot be used as one ("" when it is a directory, is missing, or cannot be looked at)."""
    try:
        mode = os.stat(directory).st_mode
    except NotADirectoryError:
        # Some component on the way is not a directory: name it.
        for parent in reversed(Path(directory).parents):
            try:
                parent_mode = os.stat(parent).st_mode
            except OSError:
                return ""
            if not stat.S_ISDIR(parent_mode):
                return f"{directory!r} is inside {str(parent)!r}, which is {_kind(parent_mode)}"
        return ""
    except OSError:
        return ""
    return "" if stat.S_ISDIR(mode) else f"{directory!r} is {_kind(mode)}"


_NESTED_MODELS: Mapping[str, type[BaseModel]] = {
    "plugins_registry": PluginsRegistryConfig,
    "kubelet": KubeletConfig,
    "kubelet_server": KubeletServerConfig,
    "telemetry": TelemetryConfig,
}


def _unknown_keys(body: Any, model: type[BaseModel], where: str) -> None:
    if not isinstance(body, Mapping):
        return
    allowed = sorted(model.model_fields)
    unknown = sorted(str(key) for key in body if key not in model.model_fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key {truncated(unknown[0])}; allowed keys: {', '.join(allowed)}")


def _check_nested_keys(data: Mapping[str, Any]) -> None:
    """Name unknown keys of nested blocks with the keys allowed there (pydantic alone cannot list them)."""
    for name, model in _NESTED_MODELS.items():
        _unknown_keys(data.get(name), model, name)
    plugins = data.get("plugins")
    if isinstance(plugins, Mapping):
        for label, body in plugins.items():
            _unknown_keys(body, PluginConfig, f'plugin "{label}"')


def _from_hcl(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Turn the parsed HCL (blocks as lists of bodies) into the mapping :class:`HostConfig` validates."""
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level block or key {truncated(unknown[0])}; allowed: {', '.join(_TOP_LEVEL_KEYS)}"
        )
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in (*_BLOCKS, "plugin")}
    plugins: dict[str, Any] = {}
    for name, body in labeled_blocks(data, "plugin", source=source).items():
        where = f'{source}: plugin "{name}"'
        bad = sorted(set(body) - set(_PLUGIN_KEYS))
        if bad:
            raise ConfigError(f"{where}: unknown key {truncated(bad[0])}; allowed keys: {', '.join(_PLUGIN_KEYS)}")
        entry: dict[str, Any] = {"config": dict(single_block(body, "config", source=where) or {})}
        if "args" in body:
            entry["args"] = body["args"]
        plugins[name] = entry
    out["plugins"] = plugins
    for name in _BLOCKS:
        block = single_block(data, name, source=source)
        if block is not None:
            out[name] = dict(block)
    return out
