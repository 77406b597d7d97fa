"""raw-exec, the reference task driver: a task's command as a plain host process, recoverable across restarts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._lazy import lazy_exports

if TYPE_CHECKING:
    from plugin_host.plugins.rawexec.config import RawExecConfig as RawExecConfig
    from plugin_host.plugins.rawexec.driver import DRIVER_NAME as DRIVER_NAME
    from plugin_host.plugins.rawexec.driver import RawExecDriver as RawExecDriver


__all__ = ["DRIVER_NAME", "RawExecConfig", "RawExecDriver"]

# Imported on first use (see plugin_host._lazy): importing this package stays cheap.
_LAZY = {
    "RawExecConfig": "plugin_host.plugins.rawexec.config",
    "DRIVER_NAME": "plugin_host.plugins.rawexec.driver",
    "RawExecDriver": "plugin_host.plugins.rawexec.driver",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
