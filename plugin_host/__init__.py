"""plugin-host: an asyncio host for infrastructure plugins."""

from __future__ import annotations

from plugin_host._version import __version__ as __version__

__all__ = ["__version__"]
