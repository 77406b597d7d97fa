"""``python -m plugin_host``: the same as the ``plugin-host`` command."""

from __future__ import annotations

from plugin_host.cli import main

raise SystemExit(main())
