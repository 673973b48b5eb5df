# The monitored VMs, one per entry of var.vms (name -> machine type), so that one
# deployment can compare machine types under the same load: Ubuntu 24.04 LTS, the
# kernel modules built against the VM's own kernel, and the Go agent as a systemd
# service on :8090 whose records carry the instance name as their vm.
#
# How a VM gets the code: the Cloud Build run of terraform apply (build.tf; or
# `make vm-push`, k8s/deploy.mk) writes the agent (static linux/amd64) and the
# kernel/ sources to gs://BUCKET/vmpulse-agent-bundle.tar.gz. The startup script
# (templates/vm-startup.sh.tftpl) runs at every boot: it waits for the dpkg lock,
# installs build tools and the running kernel's headers, waits for the bundle,
# builds and installs the modules (`make -C kernel install`: loaded at every
# boot), and installs the agent unit. No repository access or Go toolchain on the
# VM, and a new kernel gets its modules rebuilt at the next boot.
#
# Org policies: the VMs have an external address (the load generator runs outside
# Google Cloud; constraints/compute.vmExternalIpAccess must allow them), and
# Secure Boot is off because the modules are unsigned
# (constraints/compute.requireShieldedVm would refuse them; docs/deploy.md).

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

  depends_on = [time_sleep.apis]
}

resource "google_storage_bucket_iam_member" "vm_reads_bundle" {
  bucket = google_storage_bucket.agent_bundle.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.vm.email}"
}

resource "google_compute_instance" "vm" {
  for_each = local.vms

  name                      = each.value.name
  zone                      = var.zone
  machine_type              = each.value.machine_type
  tags                      = [local.agent_net_tag]
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = data.google_compute_image.ubuntu.self_link
      size  = 20
      type  = "pd-balanced"
    }
  }

  # A static external address (network.tf): the load generator runs outside
  # Google Cloud (firewall: var.loadgen_source_ranges only), and its AGENT_URL
  # survives a stop. Egress for apt goes through it.
  network_interface {
    subnetwork = google_compute_subnetwork.main.id
    access_config {
      nat_ip = google_compute_address.agent[each.key].address
    }
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
    # The startup script reports the kernel modules' state as vmpulse/kmod.
    enable-guest-attributes = "TRUE"
    # In metadata (not metadata_startup_script) so that a changed script updates
    # the VM in place instead of replacing it.
    startup-script = templatefile("${path.module}/templates/vm-startup.sh.tftpl", {
      bucket       = google_storage_bucket.agent_bundle.name
      object       = local.bundle_object
      kmod_suffix  = var.kmod_suffix
      agent_port   = local.agent_port
      wait_minutes = 60
      vm_name      = each.value.name
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
