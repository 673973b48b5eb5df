# The monitored VM: Ubuntu 24.04 LTS, the kernel modules built against its own
# kernel, and the Go agent as a systemd service on :8090.
#
# How the VM gets the code: `make vm-push` (k8s/deploy.mk) cross-compiles the agent
# (static linux/amd64), packs it with the kernel/ sources into
# gs://BUCKET/vmpulse-agent-bundle.tar.gz, and uploads it to the bucket below. The
# startup script (templates/vm-startup.sh.tftpl) runs at every boot: it installs
# build tools and the running kernel's headers, waits for the bundle, builds and
# installs the modules (`make -C kernel install`: loaded at every boot), and
# installs the agent unit. No repository access or Go toolchain on the VM, and a
# new kernel gets its modules rebuilt at the next boot.

data "google_compute_image" "ubuntu" {
  family  = "ubuntu-2404-lts-amd64"
  project = "ubuntu-os-cloud"
}

resource "google_storage_bucket" "agent_bundle" {
  name                        = "${var.project_id}-${var.prefix}-agent"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
}

resource "google_storage_bucket_iam_member" "vm_reads_bundle" {
  bucket = google_storage_bucket.agent_bundle.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.vm.email}"
}

resource "google_compute_instance" "vm" {
  name                      = "${var.prefix}-vm"
  zone                      = var.zone
  machine_type              = var.vm_machine_type
  tags                      = [local.agent_net_tag]
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = data.google_compute_image.ubuntu.self_link
      size  = 20
      type  = "pd-balanced"
    }
  }

  # An ephemeral external address: the load generator runs outside Google Cloud
  # (firewall: var.loadgen_source_ranges only). Egress for apt goes through it.
  network_interface {
    subnetwork = google_compute_subnetwork.main.id
    access_config {}
  }

  service_account {
    email  = google_service_account.vm.email
    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
  }

  # Secure Boot would refuse the unsigned vmpulse modules (the kernel's lockdown
  # enforces module signatures); vTPM and integrity monitoring stay on.
  shielded_instance_config {
    enable_secure_boot          = false
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    # In metadata (not metadata_startup_script) so that a changed script updates
    # the VM in place instead of replacing it.
    startup-script = templatefile("${path.module}/templates/vm-startup.sh.tftpl", {
      bucket       = google_storage_bucket.agent_bundle.name
      object       = local.bundle_object
      kmod_suffix  = var.kmod_suffix
      agent_port   = local.agent_port
      wait_minutes = 60
    })
  }

  lifecycle {
    # A newer image in the family must not replace a running VM.
    ignore_changes = [boot_disk[0].initialize_params[0].image]

    precondition {
      condition     = startswith(var.zone, "${var.region}-")
      error_message = "zone (${var.zone}) must be in region (${var.region}): the VM's subnet is regional."
    }
  }

  depends_on = [
    google_storage_bucket_iam_member.vm_reads_bundle,
    google_project_iam_member.vm_log_writer,
  ]
}
