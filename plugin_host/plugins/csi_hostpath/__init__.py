"""A small hostpath CSI plugin: volumes are directories; see README.md."""
