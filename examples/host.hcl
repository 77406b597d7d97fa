# plugin-host configuration: run from the repository root with `plugin-host run --config examples/host.hcl`,
# then `plugin-host status --config examples/host.hcl` in another terminal. Relative paths are relative to the
# working directory.

# The state file (plugin-host.db) and the admin socket (plugin-host.sock) live here.
state_dir = "state"

# Sockets of the plugins the host serves (created with mode 0700).
run_dir = "state/run"

# The built-in filesystem device plugin: every regular file in `dir` is a device of group "nomad/file/mock".
plugin "fs-device" {
  config {
    dir         = "examples/devices"
    list_period = "1s"
    # A device whose permissions read like this is reported unhealthy: try `chmod 666 examples/devices/dev1`.
    unhealthy_perm = "-rw-rw-rw-"
  }
}
