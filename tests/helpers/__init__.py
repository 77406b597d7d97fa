"""Helpers shared by the test modules (no test module imports another): builders, real servers and processes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root."""
