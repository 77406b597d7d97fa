"""The cloud-init NoCloud seed: an ISO 9660 image labelled ``cidata`` holding meta-data, user-data and vendor-data.

Values are written as JSON (JSON is YAML), so a command, a key or an environment value can never change the
document's structure. The vendor-data carries the password: the seed file is created with mode 0600.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycdlib

__all__ = ["ENV_FILE", "SeedContent", "Share", "build_seed", "write_seed"]

ENV_FILE = "/etc/profile.d/virt.sh"
"""Where the guest finds the task's environment (a shell script of ``export`` lines)."""
VOLUME_LABEL = "cidata"


@dataclass(frozen=True, slots=True)
class Share:
    """A host directory the guest mounts over 9p: the libvirt target tag and the mount point in the guest."""

    tag: str
    guest_path: str


@dataclass(frozen=True, slots=True)
class SeedContent:
    """Everything that goes into the seed."""

    instance_id: str
    hostname: str
    user_data: bytes | None = None
    password: str | None = field(default=None, repr=False)
    ssh_key: str | None = None
    timezone: str | None = None
    cmds: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    shares: Sequence[Share] = ()


def _yaml_doc(entries: Mapping[str, Any]) -> bytes:
    lines = ["#cloud-config"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in entries.items()]
    return ("\n".join(lines) + "\n").encode()


def _env_script(env: Mapping[str, str]) -> str:
    return "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()) if name.isidentifier()
    )


def build_seed(content: SeedContent) -> dict[str, bytes]:
    """The three seed files by name."""
    meta = f"instance-id: {json.dumps(content.instance_id)}\nlocal-hostname: {json.dumps(content.hostname)}\n"
    vendor: dict[str, Any] = {}
    if content.user_data is not None:
        # Let the user's own cloud-config win over ours where both set a key; lists are merged.
        vendor["merge_how"] = [
            {"name": "list", "settings": ["prepend"]},
            {"name": "dict", "settings": ["no_replace", "recurse_dict"]},
        ]
    if content.password:
        vendor["password"] = content.password
        vendor["chpasswd"] = {"expire": False}
    if content.ssh_key:
        vendor["ssh_authorized_keys"] = [content.ssh_key]
    if content.timezone:
        vendor["timezone"] = content.timezone
    if content.env:
        vendor["write_files"] = [
            {
                "path": ENV_FILE,
                "encoding": "b64",
                "content": base64.b64encode(_env_script(content.env).encode()).decode(),
                "permissions": "0644",
                "owner": "root:root",
            }
        ]
    if content.shares:
        vendor["bootcmd"] = [
            f"mkdir -p {shlex.quote(s.guest_path)} && (mountpoint -q {shlex.quote(s.guest_path)} ||"
            f" mount -t 9p -o trans=virtio,version=9p2000.L,ro {shlex.quote(s.tag)} {shlex.quote(s.guest_path)})"
            for s in content.shares
        ]
    if content.cmds:
        vendor["runcmd"] = list(content.cmds)
    return {
        "meta-data": meta.encode(),
        "user-data": content.user_data if content.user_data is not None else b"#cloud-config\n",
        "vendor-data": _yaml_doc(vendor),
    }


def write_seed(path: str, files: Mapping[str, bytes]) -> None:
    """Write the seed ISO to ``path`` (mode 0600, atomically). Blocking: run it in a worker thread."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, data in files.items():
            iso_name = name.replace("-", "").upper()
            iso.add_fp(io.BytesIO(data), len(data), iso_path=f"/{iso_name}.;1", rr_name=name, joliet_path=f"/{name}")
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                iso.write_fp(out)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
    finally:
        iso.close()
