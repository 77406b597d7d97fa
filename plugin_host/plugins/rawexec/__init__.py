"""raw-exec, the reference task driver: a task's command as a plain host process, recoverable across restarts."""

from __future__ import annotations

from plugin_host.plugins.rawexec.config import RawExecConfig as RawExecConfig
from plugin_host.plugins.rawexec.driver import DRIVER_NAME as DRIVER_NAME
from plugin_host.plugins.rawexec.driver import RawExecDriver as RawExecDriver

__all__ = ["DRIVER_NAME", "RawExecConfig", "RawExecDriver"]
