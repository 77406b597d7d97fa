"""Runnable examples of plugin-host (a package so tests can import them)."""
