# plugin-host with the built-in virt task driver (needs the [virt] extra, qemu and a running libvirtd).
state_dir = "state"

plugin "virt" {
  config {
    emulator {
      uri = "qemu:///system"
      # user     = "admin"      # for libvirt URIs that ask for credentials; the password is never logged
      # password = "..."
    }
    data_dir    = "/var/lib/virt"          # thin copies, cloud-init seeds and serial console logs
    image_paths = ["/var/lib/virt/images"] # images may only come from here, data_dir or the task's alloc dir
  }
}
