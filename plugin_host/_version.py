"""The package version, read by the build backend and by plugin_info()."""

__version__ = "0.1.0.dev0"
