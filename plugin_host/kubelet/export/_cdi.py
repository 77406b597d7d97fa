"""CDI spec files: the document (field names as in the CDI SPEC.md), the file name, and writing it once, atomically.

The document is written as JSON. JSON is a subset of YAML 1.2, and the CDI loaders (``sigs.k8s.io/yaml`` in
``tags.cncf.io/container-device-interface``, used by containerd and CRI-O) read ``.yaml`` files through a YAML
parser, so a JSON document under the ``.yaml`` name the device plugin convention uses loads everywhere, needs no YAML
dependency, and quotes every string safely.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from plugin_host.kubelet.export.api import CdiContainerEdits, CdiDevice, CdiDeviceNode, CdiHook, CdiMount, CdiSpec

__all__ = ["SPEC_FILE_MODE", "qualified_name", "spec_document", "spec_file_name", "write_spec_once"]

logger = logging.getLogger(__name__)

SPEC_FILE_MODE = 0o644
"""Runtimes read the specs as another user in some setups; the CDI library's own default (0600) breaks that."""


def qualified_name(spec: CdiSpec) -> str:
    """``<vendor>/<class>=<device>`` of the spec's (single) device."""
    return f"{spec.kind}={spec.devices[0].name}"


def spec_file_name(spec: CdiSpec) -> str:
    """``<vendor>-<class>-<device>.yaml``: the kind with ``/`` replaced by ``-``, then the device name."""
    return f"{spec.kind.replace('/', '-')}-{spec.devices[0].name}.yaml"


def _put(document: dict[str, Any], key: str, value: Any) -> None:
    """Set an optional field unless it is unset or empty (Go's ``omitempty``)."""
    if value is None or (isinstance(value, str | list | dict) and not value):
        return
    document[key] = value


def _device_node(node: CdiDeviceNode) -> dict[str, Any]:
    document: dict[str, Any] = {"path": node.path}
    _put(document, "hostPath", node.host_path)
    _put(document, "type", node.type)
    _put(document, "major", node.major)
    _put(document, "minor", node.minor)
    _put(document, "fileMode", node.file_mode)
    _put(document, "permissions", node.permissions)
    _put(document, "uid", node.uid)
    _put(document, "gid", node.gid)
    return document


def _mount(mount: CdiMount) -> dict[str, Any]:
    document: dict[str, Any] = {"hostPath": mount.host_path, "containerPath": mount.container_path}
    _put(document, "options", list(mount.options))
    _put(document, "type", mount.type)
    return document


def _hook(hook: CdiHook) -> dict[str, Any]:
    document: dict[str, Any] = {"hookName": hook.hook_name, "path": hook.path}
    _put(document, "args", list(hook.args))
    _put(document, "env", list(hook.env))
    _put(document, "timeout", hook.timeout)
    return document


def _edits(edits: CdiContainerEdits) -> dict[str, Any]:
    document: dict[str, Any] = {}
    _put(document, "env", list(edits.env))
    _put(document, "deviceNodes", [_device_node(n) for n in edits.device_nodes])
    _put(document, "hooks", [_hook(h) for h in edits.hooks])
    _put(document, "mounts", [_mount(m) for m in edits.mounts])
    return document


def _device(device: CdiDevice) -> dict[str, Any]:
    document: dict[str, Any] = {"name": device.name}
    _put(document, "annotations", dict(device.annotations))
    document["containerEdits"] = _edits(device.container_edits)
    return document


def spec_document(spec: CdiSpec) -> dict[str, Any]:
    """The spec as the CDI file format spells it (camelCase keys, empty optional fields left out)."""
    document: dict[str, Any] = {"cdiVersion": spec.cdi_version, "kind": spec.kind}
    _put(document, "annotations", dict(spec.annotations))
    document["devices"] = [_device(d) for d in spec.devices]
    _put(document, "containerEdits", _edits(spec.container_edits))
    return document


def write_spec_once(spec: CdiSpec, cdi_dir: Path) -> Path:
    """Write ``spec`` to ``cdi_dir`` (created if missing) unless its file is already there; returns the path.

    The content goes to a temporary file in the same directory first and is renamed into place, so a runtime never
    reads a half-written spec. Blocking: run it in a worker thread.
    """
    path = cdi_dir / spec_file_name(spec)
    if path.exists():
        return path
    cdi_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    content = json.dumps(spec_document(spec), indent=2, sort_keys=False) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=cdi_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, SPEC_FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("wrote CDI spec %s for %s", path, qualified_name(spec))
    return path
