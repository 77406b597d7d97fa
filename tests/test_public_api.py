"""The public API: the names the contract (shared/design.md §3) promises, and __all__ lists that do not drift."""

from __future__ import annotations

import importlib
import inspect

import pytest

import plugin_host.errors as errors

PACKAGES = [
    "plugin_host",
    "plugin_host.errors",
    "plugin_host.registry",
    "plugin_host.state",
    "plugin_host.base",
    "plugin_host.device",
    "plugin_host.csi",
    "plugin_host.driver",
    "plugin_host.plugins.rawexec",
    "plugin_host.plugins.virt",
    "plugin_host.plugins.fsdevice",
    "plugin_host.plugins.csi_hostpath",
    "plugin_host.fsdevice",
    "plugin_host.kubelet",
    "plugin_host.config",
    "plugin_host.goplugin",
    "plugin_host.loader",
]

CONTRACT = {
    "plugin_host": [
        "Registry",
        "PluginInfo",
        "PluginConnectionInfo",
        "PluginUpdateEvent",
        "EventType",
        "SqliteStateStore",
        "PLUGIN_TYPE_CSI_CONTROLLER",
        "PLUGIN_TYPE_CSI_NODE",
        "PLUGIN_TYPE_DEVICE",
    ],
    "plugin_host.device": [
        "DeviceGroup",
        "Device",
        "ContainerReservation",
        "Mount",
        "DeviceSpec",
        "DeviceGroupStats",
        "DeviceStats",
        "StatValue",
        "StatObject",
        "FingerprintResponse",
        "StatsResponse",
        "DeviceManager",
    ],
    "plugin_host.fsdevice": ["FsDevice", "FsDeviceConfig"],
    "plugin_host.csi": ["CsiClient", "GetPluginInfoResponse", "NodeGetInfoResponse", "VolumeCapability", "Volume"],
}


@pytest.mark.parametrize("module_name", PACKAGES)
def test_all_names_resolve_and_are_unique(module_name: str) -> None:
    """Every name in a package's __all__ exists, and none is listed twice."""
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize(("module_name", "names"), CONTRACT.items())
def test_contract_names_are_exported(module_name: str, names: list[str]) -> None:
    """The names the design contract promises are importable from where it says, and listed in __all__."""
    module = importlib.import_module(module_name)
    assert [n for n in names if n not in module.__all__] == []


def test_every_error_derives_from_the_root_and_is_exported() -> None:
    """Every exception class in plugin_host.errors derives from PluginHostError and is in __all__."""
    classes = {
        name
        for name, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    }
    assert classes == set(errors.__all__)
    assert all(issubclass(getattr(errors, name), errors.PluginHostError) for name in classes)


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("InvalidPluginError", ValueError),
        ("ConfigError", ValueError),
        ("PluginNotFoundError", LookupError),
        ("EventsExpiredError", LookupError),
        ("StateError", OSError),
        ("PluginTimeoutError", TimeoutError),
        ("PluginUnavailableError", ConnectionError),
    ],
)
def test_errors_also_inherit_the_matching_builtin(name: str, builtin: type[BaseException]) -> None:
    """Callers can catch the builtin as well as the plugin_host class."""
    assert issubclass(getattr(errors, name), builtin)
