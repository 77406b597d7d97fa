"""The base plugin interface every Nomad plugin implements: identity, config schema, configuration.

Mirrors ``plugins/base`` of Nomad: ``PluginInfo``, ``ConfigSchema`` and ``SetConfig``. The config schema is an
hclspec tree (:mod:`plugin_host.base.hclspec`); configuration arrives as a mapping in-process, or as the msgpack
bytes Nomad sends over the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

# One definition: a device plugin registers in the registry under the same type name it reports in PluginInfo.
from plugin_host.registry.models import PLUGIN_TYPE_DEVICE as PLUGIN_TYPE_DEVICE

if TYPE_CHECKING:
    from plugin_host.base.hclspec import Spec

PLUGIN_TYPE_DRIVER = "driver"


class PluginInfoResponse(BaseModel):
    """What a plugin says about itself (Nomad's ``base.PluginInfoResponse``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    plugin_api_versions: tuple[str, ...]
    plugin_version: str
    name: str


@runtime_checkable
class BasePlugin(Protocol):
    """The calls every plugin answers, whatever its kind."""

    async def plugin_info(self) -> PluginInfoResponse:
        """Identity of the plugin: type, name, version and the API versions it speaks."""
        ...

    async def config_schema(self) -> Spec:
        """The hclspec describing the plugin's ``config {}`` block."""
        ...

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        """Apply a configuration: a model, a mapping, or Nomad's msgpack-encoded bytes."""
        ...
