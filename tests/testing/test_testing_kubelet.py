"""The fake kubelet users test their device plugins against is a well-behaved async context manager."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin_host.testing.kubelet import FakeKubelet


@pytest.mark.anyio
async def test_a_fake_kubelet_entered_twice_refuses_and_keeps_serving(short_tmp: Path) -> None:
    """Entering a FakeKubelet that already runs is refused; the running one keeps its socket and stops cleanly."""
    kubelet = FakeKubelet(short_tmp)
    async with kubelet:
        with pytest.raises(RuntimeError, match="already running"):
            await kubelet.__aenter__()
        assert kubelet.socket_path.exists()
    assert not kubelet.socket_path.exists()
