"""What a container runtime's CDI loader refuses in a spec file, checked before the file is ever written.

Runtimes (containerd, CRI-O, through ``tags.cncf.io/container-device-interface``) validate every spec they load and
skip a spec that fails, so the container asking for its device fails to start. The rules checked here are the
library's default validator and its version rules:

- ``cdiVersion`` is a released spec version the loader knows (0.3.0 to 0.8.0, with or without a leading ``v``) and
  at least the version the spec's features need: annotations or a ``.`` in the class need 0.6.0; a device name
  starting with a digit or a device node with a ``hostPath`` need 0.5.0; a mount ``type`` needs 0.4.0;
- a device has at least one container edit;
- environment entries are ``NAME=value`` with a non-empty name; device node types are ``b``, ``c``, ``u``, ``p`` or
  empty and permissions some of ``rwm``; hook names are OCI hook names; ids and modes fit their unsigned 32 bits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin_host.kubelet.export.api import CdiContainerEdits, CdiSpec

__all__ = ["KNOWN_VERSIONS", "cdi_spec_problem"]

KNOWN_VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0")
_HOOK_NAMES = frozenset(("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"))
_NODE_TYPES = frozenset(("", "b", "c", "u", "p"))
_UINT32_MAX = (1 << 32) - 1


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _required_version(spec: CdiSpec) -> tuple[str, str]:
    """The lowest spec version the features of ``spec`` need, and the feature that needs it."""
    all_edits = [spec.container_edits, *(device.container_edits for device in spec.devices)]
    if spec.annotations or any(device.annotations for device in spec.devices):
        return "0.6.0", "annotations"
    if "." in spec.kind.partition("/")[2]:
        return "0.6.0", "a '.' in the class of the kind"
    if any(device.name[:1].isdigit() for device in spec.devices):
        return "0.5.0", "a device name starting with a digit"
    if any(node.host_path for edits in all_edits for node in edits.device_nodes):
        return "0.5.0", "a device node with a host_path"
    if any(mount.type for edits in all_edits for mount in edits.mounts):
        return "0.4.0", "a mount with a type"
    return KNOWN_VERSIONS[0], ""


def _env_problem(what: str, entries: Iterable[str]) -> str | None:
    for entry in entries:
        if entry.find("=") <= 0:
            return f"{what} entry {entry!r} is not NAME=value"
    return None


def _edits_problem(where: str, edits: CdiContainerEdits) -> str | None:
    problem = _env_problem(f"{where} env", edits.env)
    if problem is not None:
        return problem
    for node in edits.device_nodes:
        if node.type not in _NODE_TYPES:
            return f"{where} device node {node.path!r} has type {node.type!r}, expected one of 'b', 'c', 'u', 'p' or ''"
        if not set(node.permissions) <= set("rwm"):
            return f"{where} device node {node.path!r} has permissions {node.permissions!r}, expected some of 'rwm'"
        for field in ("uid", "gid", "file_mode"):
            value = getattr(node, field)
            if value is not None and not 0 <= value <= _UINT32_MAX:
                return f"{where} device node {node.path!r} has {field} {value}, expected 0 to {_UINT32_MAX}"
    for hook in edits.hooks:
        if hook.hook_name not in _HOOK_NAMES:
            return f"{where} hook {hook.path!r} has hook_name {hook.hook_name!r}, expected one of {sorted(_HOOK_NAMES)}"
        problem = _env_problem(f"{where} hook {hook.path!r} env", hook.env)
        if problem is not None:
            return problem
    return None


def _has_edits(edits: CdiContainerEdits) -> bool:
    return bool(edits.env or edits.device_nodes or edits.hooks or edits.mounts)


def cdi_spec_problem(spec: CdiSpec) -> str | None:
    """What would make a runtime refuse ``spec`` (kind and device names are checked elsewhere), or None."""
    version = spec.cdi_version.removeprefix("v")
    if version not in KNOWN_VERSIONS:
        return f"cdi_version {spec.cdi_version!r} is not a spec version runtimes load, expected one of {KNOWN_VERSIONS}"
    required, feature = _required_version(spec)
    if _version_key(version) < _version_key(required):
        return f"cdi_version {spec.cdi_version!r} is too old for {feature}, which needs at least {required!r}"
    problem = _edits_problem("the spec's container_edits", spec.container_edits)
    if problem is not None:
        return problem
    for device in spec.devices:
        if not _has_edits(device.container_edits):
            return f"device {device.name!r} has no container_edits, expected at least one env, node, hook or mount"
        problem = _edits_problem(f"device {device.name!r}", device.container_edits)
        if problem is not None:
            return problem
    return None
