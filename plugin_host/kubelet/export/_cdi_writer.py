"""CDI spec files written only when their content changes: :class:`CdiSpecWriter`.

Every Allocate of a device with a CDI spec must leave the spec file in the CDI directory, but kubelet calls
Allocate for every container start, and the spec rarely changes. The writer remembers, per file name, the content
it last wrote (or found on disk) and the file's identity (inode, size, modification time). An Allocate whose spec is
the same object, with the file still the one it saw, costs one ``stat``; an equal spec costs a rendering in memory.
Either way nothing is written and nothing is synced. A changed spec (same file name, other content) is rewritten,
a removed file is written again; a file someone else put there or edited is left alone (see :meth:`ensure`).
Writes are atomic (temporary file, fsync, rename) and run in a worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

from plugin_host.kubelet.export import _cdi
from plugin_host.kubelet.export.api import CdiSpec

__all__ = ["CdiSpecWriter", "render_spec"]

logger = logging.getLogger(__name__)

_FileIdentity = tuple[int, int, int]


def render_spec(spec: CdiSpec) -> bytes:
    """The file content of ``spec`` (JSON, which CDI loaders read as YAML; see :mod:`._cdi`)."""
    return (json.dumps(_cdi.spec_document(spec), indent=2, sort_keys=False) + "\n").encode()


def _identity(path: Path) -> _FileIdentity | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _Written:
    spec: CdiSpec
    """The spec object last checked: the same object needs no rendering to compare."""
    content: bytes
    identity: _FileIdentity


def _write(path: Path, content: bytes) -> _FileIdentity:
    """Write ``content`` to ``path`` atomically (temporary file in the same directory, fsync, rename)."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, _cdi.SPEC_FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    identity = _identity(path)
    assert identity is not None
    return identity


class CdiSpecWriter:
    """Keeps the spec files of one CDI directory up to date, writing only what changed."""

    def __init__(self, cdi_dir: Path) -> None:
        self._dir = cdi_dir
        self._written: dict[str, _Written] = {}
        self.writes = 0
        """How many files this writer wrote (for tests and benchmarks)."""

    @property
    def directory(self) -> Path:
        return self._dir

    def is_current(self, file_name: str, spec: CdiSpec) -> bool:
        """Whether ``file_name`` holds ``spec`` already, as far as one ``stat`` tells (no rendering, no I/O else)."""
        known = self._written.get(file_name)
        return known is not None and known.spec is spec and _identity(self._dir / file_name) == known.identity

    async def ensure(self, file_name: str, spec: CdiSpec) -> None:
        """Make ``file_name`` stand for ``spec``; ``OSError`` when it cannot be written.

        A missing file is written. A file this writer has not seen yet (an earlier run's, or one placed by an
        administrator) is kept as it is, as is a file edited after we wrote it while the plugin's spec stayed the
        same: only a change of the plugin's spec (other content under the same file name) rewrites it.
        """
        if self.is_current(file_name, spec):
            return
        path = self._dir / file_name
        content = render_spec(spec)
        known = self._written.get(file_name)
        identity = _identity(path)
        if identity is not None and (known is None or known.content == content):
            self._written[file_name] = _Written(spec, content, identity)
            return
        identity = await anyio.to_thread.run_sync(_write, path, content)
        self.writes += 1
        self._written[file_name] = _Written(spec, content, identity)
        logger.info("wrote CDI spec %s for %s", path, _cdi.qualified_name(spec))
