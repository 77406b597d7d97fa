# Configuration of the built-in fs-device plugin (Nomad's example device plugin):
# every regular file in `dir` is a device of the group "nomad/file/mock".
config {
  # Relative to the working directory; run from the repository root.
  dir = "examples/devices"

  # How often the directory is rescanned (a Go duration: "500ms", "5s", "1m30s").
  list_period = "1s"

  # A file whose mode prints like this in `ls -l` is reported unhealthy (try `chmod 777 examples/devices/dev1`).
  unhealthy_perm = "-rwxrwxrwx"
}
