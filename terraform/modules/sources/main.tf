# What the deployment's artifacts are built from, as hashes: the images and the
# agent bundle (images_hash) and the Kubernetes manifests (k8s_hash). A change in
# any of these files changes the hash, and the next `terraform apply` builds and
# rolls out again; nothing else does. TestImageInputsCoverTheCommands
# (terraform/templates_test.go) checks that the image inputs cover every package
# the four commands import (go list -deps), so a new package cannot be left out
# silently.

variable "repo_root" {
  description = "Path of the repository root (the checkout the images are built from)."
  type        = string
}

locals {
  # Go sources of the commands and the packages they import (tests excluded: they
  # change no binary), the dashboard's sources, the kernel modules' sources, the
  # Dockerfiles and the build configuration.
  image_patterns = [
    "go.mod", "go.sum", ".dockerignore",
    "agent/**/*.go", "functions/**/*.go", "record/**/*.go", "internal/**/*.go",
    "frontend/cmd/**/*.go", "frontend/web/**/*.go",
    "frontend/src/**", "frontend/index.html", "frontend/package.json", "frontend/package-lock.json",
    "frontend/tsconfig.json", "frontend/vite.config.ts",
    "kernel/Makefile", "kernel/*.c", "kernel/*.h",
    "functions/cmd/*/Dockerfile", "frontend/Dockerfile",
    "terraform/cloudbuild.yaml",
  ]
  image_inputs = sort(distinct([
    for f in flatten([for p in local.image_patterns : fileset(var.repo_root, p)]) : f
    if !endswith(f, "_test.go")
  ]))
  k8s_inputs = sort(distinct(concat(
    tolist(fileset(var.repo_root, "k8s/**/*.yaml")),
    tolist(fileset(var.repo_root, "k8s/**/*.env")),
    ["k8s/deploy.sh"],
  )))
}

output "image_inputs" {
  description = "The files the images and the agent bundle are built from, relative to the repository root."
  value       = local.image_inputs
}

output "images_hash" {
  description = "12 hex digits of a hash over image_inputs: the default image tag."
  value       = substr(sha256(join("\n", [for f in local.image_inputs : "${f} ${filesha256("${var.repo_root}/${f}")}"])), 0, 12)
}

output "k8s_hash" {
  description = "A hash over the Kubernetes manifests and k8s/deploy.sh."
  value       = sha256(join("\n", [for f in local.k8s_inputs : "${f} ${filesha256("${var.repo_root}/${f}")}"]))
}
