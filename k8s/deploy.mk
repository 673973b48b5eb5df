# vmpulse deployment targets. The top-level Makefile includes this file:
#
#   include k8s/deploy.mk
#
# Images (docker; not needed for the offline checks):
#   make images   REGISTRY=docker.io/USER [TAG=...]   build the three images
#   make push     REGISTRY=docker.io/USER [TAG=...]   build and push them
# Checks:
#   make tf-check                                     terraform fmt -check
# After `terraform apply` (docs/deploy.md has the whole sequence):
#   make vm-push                                      agent + kernel/ to the VM's bucket
#   make db-grant                                     one-time GRANT for the routes' DB user
#   make k8s-overlay REGISTRY=... TAG=...             out/k8s from terraform's outputs
#   make k8s-apply   REGISTRY=... TAG=...             kubectl apply -k out/k8s
#   make run-deploy  REGISTRY=... TAG=...             gcloud run deploy relay + dashboard
#
# REGISTRY is Docker Hub by default (docker.io/$(DOCKERHUB_USER)); Artifact
# Registry works the same: REGISTRY=REGION-docker.pkg.dev/PROJECT/REPO after
# `gcloud auth configure-docker REGION-docker.pkg.dev`.

VMP_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
# Including this file must not change the includer's default goal.
VMP_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

DOCKERHUB_USER ?=
REGISTRY ?= docker.io/$(DOCKERHUB_USER)
TAG ?= $(shell git -C $(VMP_ROOT) rev-parse --short=12 HEAD 2>/dev/null || echo dev)
# GKE Autopilot and Cloud Run run linux/amd64 here; this also makes an arm64
# laptop build the right thing.
DOCKER_PLATFORM ?= linux/amd64
DOCKER ?= docker
TERRAFORM ?= terraform
KUBECTL ?= kubectl
GCLOUD ?= gcloud

VMP_TF := $(TERRAFORM) -chdir=$(VMP_ROOT)/terraform
VMP_OUT := $(VMP_ROOT)/out
# out/k8s is two levels below the root: the overlay's resources entry is ../../k8s.
VMP_OVERLAY := $(VMP_OUT)/k8s
VMP_BUNDLE := $(VMP_OUT)/vmpulse-agent-bundle.tar.gz

# The route image as k8s/kustomization.yaml leaves it (its images: placeholder).
# An overlay's images: entry matches the name its base produced, so the overlay
# renames this one.
VMP_BASE_ROUTE_IMAGE := registry.invalid/vmpulse/vmpulse-route

# image name -> Dockerfile (the build context is always the repository root)
VMP_IMAGES := vmpulse-route vmpulse-relay vmpulse-web
VMP_DOCKERFILE_vmpulse-route := functions/cmd/vmpulse-route/Dockerfile
VMP_DOCKERFILE_vmpulse-relay := functions/cmd/vmpulse-relay/Dockerfile
VMP_DOCKERFILE_vmpulse-web := frontend/Dockerfile

.PHONY: images push tf-check vm-bundle vm-push db-grant k8s-overlay k8s-apply run-deploy vmp-check-registry

vmp-check-registry:
	@case '$(REGISTRY)' in \
	  ''|*/|*//*|*' '*) echo 'REGISTRY is not set: make ... REGISTRY=docker.io/USER (or DOCKERHUB_USER=USER)' >&2; exit 2;; \
	esac
	@case '$(TAG)' in \
	  ''|latest) echo 'TAG must be set and must not be latest' >&2; exit 2;; \
	esac

images: vmp-check-registry
	$(foreach i,$(VMP_IMAGES),$(DOCKER) build --platform $(DOCKER_PLATFORM) -f $(VMP_ROOT)/$(VMP_DOCKERFILE_$(i)) -t $(REGISTRY)/$(i):$(TAG) $(VMP_ROOT) &&) true

push: images
	$(foreach i,$(VMP_IMAGES),$(DOCKER) push $(REGISTRY)/$(i):$(TAG) &&) true

tf-check:
	$(TERRAFORM) fmt -check -recursive $(VMP_ROOT)/terraform/

# The VM's bundle: a static linux/amd64 agent and the kernel module sources (built
# on the VM against its own kernel). terraform/templates/vm-startup.sh.tftpl
# installs it.
vm-bundle:
	rm -rf $(VMP_OUT)/vm-bundle && mkdir -p $(VMP_OUT)/vm-bundle/bin
	cd $(VMP_ROOT) && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -buildvcs=false -trimpath -ldflags='-s -w' \
	  -o $(VMP_OUT)/vm-bundle/bin/vmpulse-agent ./agent/cmd/vmpulse-agent
	tar -C $(VMP_ROOT) --exclude='*.ko' --exclude='*.o' --exclude='*.mod' --exclude='*.mod.c' \
	  --exclude='.*.cmd' --exclude=Module.symvers --exclude=modules.order --exclude=.tmp_versions \
	  -cf - kernel | tar -C $(VMP_OUT)/vm-bundle -xf -
	tar -C $(VMP_OUT)/vm-bundle -czf $(VMP_BUNDLE) bin kernel
	@echo "wrote $(VMP_BUNDLE)"

vm-push: vm-bundle
	$(GCLOUD) storage cp $(VMP_BUNDLE) "$$($(VMP_TF) output -raw agent_bundle_uri)"
	@echo "the VM installs it within a minute: gcloud compute ssh $$($(VMP_TF) output -raw vm_name) --zone $$($(VMP_TF) output -raw vm_zone) --tunnel-through-iap --command 'sudo journalctl -u google-startup-scripts -n 50'"

db-grant:
	$(VMP_ROOT)/k8s/db-grant.sh

k8s-overlay: vmp-check-registry
	mkdir -p $(VMP_OVERLAY)
	$(VMP_TF) output -raw k8s_overlay > $(VMP_OVERLAY)/kustomization.yaml
	printf 'images:\n- name: %s\n  newName: %s/vmpulse-route\n  newTag: "%s"\n' '$(VMP_BASE_ROUTE_IMAGE)' '$(REGISTRY)' '$(TAG)' >> $(VMP_OVERLAY)/kustomization.yaml
	$(KUBECTL) kustomize $(VMP_OVERLAY) > /dev/null
	@echo "wrote $(VMP_OVERLAY)/kustomization.yaml; apply with: kubectl apply -k $(VMP_OVERLAY)"

k8s-apply: k8s-overlay
	$(KUBECTL) apply -k $(VMP_OVERLAY)

run-deploy: vmp-check-registry
	$(GCLOUD) run deploy "$$($(VMP_TF) output -raw relay_service_name)" --image $(REGISTRY)/vmpulse-relay:$(TAG) \
	  --region "$$($(VMP_TF) output -raw region)" --project "$$($(VMP_TF) output -raw project_id)"
	$(GCLOUD) run deploy "$$($(VMP_TF) output -raw web_service_name)" --image $(REGISTRY)/vmpulse-web:$(TAG) \
	  --region "$$($(VMP_TF) output -raw region)" --project "$$($(VMP_TF) output -raw project_id)"

.DEFAULT_GOAL := $(VMP_SAVED_DEFAULT_GOAL)
