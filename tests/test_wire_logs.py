"""Secrets never reach a log line at DEBUG, not even through the HTTP/2 libraries under grpclib (hpack logs every
header it encodes or decodes, ``grpc-message`` included, at DEBUG: hpack/hpack.py ``log.debug("Adding %s=%s ...")``
and ``log.debug("Decoded %s, ...")``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.csi import serve_echoing_foreign_plugin

from plugin_host.csi import CsiClient
from plugin_host.errors import PluginRPCError

REPO = Path(__file__).resolve().parents[1]
# A quote, a space and a non-ASCII letter: grpc-message carries it percent-encoded, a repr escapes the quote. Every
# form it can take (raw, repr, JSON, percent-encoded, the repr of those bytes) still contains its ASCII start.
SECRET = "hunter2-S\u00ebcret 'x'"
CORE = "hunter2-S"


def _record_texts(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        texts.append((record.name, text))
    return texts


@pytest.mark.anyio
async def test_no_logger_shows_a_secret_a_plugin_echoes_in_its_status_at_debug(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the root logger capturing everything at DEBUG, a foreign plugin quoting the secrets in its error status
    leaves them in no record of any logger (ours, grpclib's, hpack's, h2's), in no form."""
    caplog.set_level(logging.DEBUG)
    async with (
        serve_echoing_foreign_plugin(short_tmp / "csi.sock"),
        CsiClient(short_tmp / "csi.sock", timeout=10) as client,
    ):
        with pytest.raises(PluginRPCError) as caught:
            await client.delete_volume(volume_id="v", secrets={"token": SECRET})
    assert caught.value.code == "PERMISSION_DENIED"
    assert "***" in str(caught.value)
    assert CORE not in str(caught.value)
    assert any(name.startswith("plugin_host.") for name, _ in _record_texts(caplog.records))
    leaking = [(name, text[:200]) for name, text in _record_texts(caplog.records) if CORE in text]
    assert leaking == []


_CLI_SCRIPT = textwrap.dedent(
    """
    import logging, sys, tempfile
    from pathlib import Path
    import anyio
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from plugin_host.cli import _configure_logging
    from plugin_host.csi import CsiClient
    from helpers.csi import serve_echoing_foreign_plugin

    async def main() -> None:
        _configure_logging("debug", as_json=False)
        # The library's own guard taken off: the CLI's levels alone must keep hpack and h2 quiet.
        from plugin_host._wire_logs import WIRE_LOGGERS, WIRE_PAYLOAD_FILTER
        for name in WIRE_LOGGERS:
            logging.getLogger(name).removeFilter(WIRE_PAYLOAD_FILTER)
        path = Path(tempfile.mkdtemp(prefix="ph-")) / "csi.sock"
        async with serve_echoing_foreign_plugin(path), CsiClient(path, timeout=10) as client:
            try:
                await client.delete_volume(volume_id="v", secrets={"token": sys.argv[2]})
            except Exception as exc:
                logging.getLogger("plugin_host.cli").error("%s", exc)

    anyio.run(main)
    """
)


def test_cli_debug_logging_keeps_hpack_and_h2_at_info() -> None:
    """``--log-level debug`` logs our DEBUG lines on stderr but caps hpack and h2 at INFO, so a secret a plugin
    echoes in its status does not reach stderr even without the library's filter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", _CLI_SCRIPT, str(REPO), SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DEBUG plugin_host.csi" in result.stderr
    assert "PERMISSION_DENIED" in result.stderr
    leaking = [line[:200] for line in result.stderr.splitlines() if CORE in line]
    assert leaking == []
