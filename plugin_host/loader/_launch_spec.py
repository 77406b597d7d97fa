"""What to launch: one :class:`PluginSpec` per executable in ``plugin_dir`` (Nomad's plugin loader scan)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin_host.errors import ConfigError

__all__ = ["PluginSpec", "plugin_specs_from_dir"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginSpec:
    """An external plugin: its name, its executable, the arguments and the ``config {}`` sent with SetConfig."""

    name: str
    executable: Path
    args: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets: never in repr or logs


def plugin_specs_from_dir(
    plugin_dir: str | os.PathLike[str],
    configured: Mapping[str, tuple[tuple[str, ...], Mapping[str, Any]]],
    *,
    skip: frozenset[str] = frozenset(),
) -> list[PluginSpec]:
    """Every executable file of ``plugin_dir`` as a spec, sorted by name, with ``configured[name] = (args, config)``.

    As Nomad's loader does, the file name is the plugin name. Non-executable files are skipped with a warning
    naming them; names in ``skip`` (built-in plugins) are ignored. A missing directory is a :class:`ConfigError`.
    """
    directory = Path(plugin_dir)
    if not directory.is_dir():
        raise ConfigError(f"plugin_dir {str(directory)!r} does not exist or is not a directory")
    specs: list[PluginSpec] = []
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if name in skip or name.startswith("."):
            continue
        if not entry.is_file():
            continue
        if not os.access(entry, os.X_OK):
            logger.warning("plugin_dir: %s is not executable; skipping it", entry)
            continue
        args, config = configured.get(name, ((), {}))
        specs.append(PluginSpec(name=name, executable=entry.absolute(), args=tuple(args), config=dict(config)))
    found = {spec.name for spec in specs}
    for name in sorted(set(configured) - found - skip):
        logger.warning('plugin "%s" is configured but %s has no executable of that name', name, directory)
    return specs
