# vmpulse deployment targets. The top-level Makefile includes this file:
#
#   include k8s/deploy.mk
#
# The path (docs/deploy.md):
#   make deploy                       terraform init + apply: APIs, network, GKE, Cloud SQL,
#                                     Pub/Sub, images (Cloud Build), Cloud Run, VMs, the
#                                     Kubernetes side applied and waited for; prints the
#                                     dashboard URL and the load commands
#   make release [TAG=...]            a new version: images by Cloud Build, `gcloud run deploy`
#                                     of the relay and the dashboard, the routes rolled
#   make teardown                     terraform destroy (waits for the load balancer to go)
# Parts of it, for when one step needs repeating:
#   make run-deploy TAG=...           gcloud run deploy relay + dashboard (images must exist)
#   make k8s-apply                    apply the Kubernetes side again and wait (k8s/deploy.sh)
#   make db-grant                     run the GRANT Job again and wait
#   make vm-push                      a locally built agent bundle to the VMs' bucket
# Docker Hub publishing (docker; the course asks for it):
#   make images   REGISTRY=docker.io/USER [TAG=...]   build the three images
#   make push     REGISTRY=docker.io/USER [TAG=...]   build and push them
#   (then dockerhub_user = "USER" and image_tag = "TAG" in terraform.tfvars)
# Checks:
#   make tf-check                     terraform fmt -check

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
VMP_TFO = $$($(VMP_TF) output -raw $(1))
VMP_OUT := $(VMP_ROOT)/out
VMP_BUNDLE := $(VMP_OUT)/vmpulse-agent-bundle.tar.gz

# image name -> Dockerfile (the build context is always the repository root)
VMP_IMAGES := vmpulse-route vmpulse-relay vmpulse-web
VMP_DOCKERFILE_vmpulse-route := functions/cmd/vmpulse-route/Dockerfile
VMP_DOCKERFILE_vmpulse-relay := functions/cmd/vmpulse-relay/Dockerfile
VMP_DOCKERFILE_vmpulse-web := frontend/Dockerfile

# What k8s/deploy.sh needs, from terraform's outputs.
VMP_K8S_ENV = PROJECT="$(call VMP_TFO,project_id)" REGION="$(call VMP_TFO,region)" \
	CLUSTER="$(call VMP_TFO,gke_cluster_name)" K8S_OVERLAY="$(call VMP_TFO,k8s_overlay)" \
	KUBECTL="$(KUBECTL)" GCLOUD="$(GCLOUD)"

.PHONY: images push tf-check vm-bundle vm-push deploy release run-deploy k8s-apply db-grant teardown vmp-check-registry vmp-check-tag

vmp-check-registry: vmp-check-tag
	@case '$(REGISTRY)' in \
	  ''|*/|*//*|*' '*) echo 'REGISTRY is not set: make ... REGISTRY=docker.io/USER (or DOCKERHUB_USER=USER)' >&2; exit 2;; \
	esac

vmp-check-tag:
	@case '$(TAG)' in \
	  ''|latest) echo 'TAG must be set and must not be latest' >&2; exit 2;; \
	esac

images: vmp-check-registry
	$(foreach i,$(VMP_IMAGES),$(DOCKER) build --platform $(DOCKER_PLATFORM) -f $(VMP_ROOT)/$(VMP_DOCKERFILE_$(i)) -t $(REGISTRY)/$(i):$(TAG) $(VMP_ROOT) &&) true

push: images
	$(foreach i,$(VMP_IMAGES),$(DOCKER) push $(REGISTRY)/$(i):$(TAG) &&) true

tf-check:
	$(TERRAFORM) fmt -check -recursive $(VMP_ROOT)/terraform/

deploy:
	$(VMP_TF) init -input=false
	$(VMP_TF) apply
	@$(VMP_TF) output dashboard_url
	@$(VMP_TF) output -raw load_commands; echo

# A release: the images of this checkout by Cloud Build under TAG (the git
# commit by default), then the relay and the dashboard with `gcloud run deploy`
# (terraform ignores the image it then sees), then both routes.
release: vmp-check-tag
	REPO_ROOT=$(VMP_ROOT) PROJECT="$(call VMP_TFO,project_id)" REGION="$(call VMP_TFO,region)" \
	  REGISTRY="$(call VMP_TFO,image_registry)" TAG=$(TAG) BUNDLE_LOCATION="$(call VMP_TFO,agent_bundle_location)" \
	  STAGING="$(call VMP_TFO,build_staging)" BUILD_SA="$(call VMP_TFO,build_service_account)" GCLOUD="$(GCLOUD)" \
	  bash $(VMP_ROOT)/terraform/scripts/build-images.sh
	$(MAKE) --no-print-directory -f $(lastword $(MAKEFILE_LIST)) run-deploy TAG=$(TAG)
	$(VMP_K8S_ENV) ROUTE_IMAGE="$(call VMP_TFO,image_registry)/vmpulse-route:$(TAG)" bash $(VMP_ROOT)/k8s/deploy.sh release

# The relay has a metrics sidecar: --container names the one whose image changes.
run-deploy: vmp-check-tag
	$(GCLOUD) run deploy "$(call VMP_TFO,relay_service_name)" --container relay --image "$(call VMP_TFO,image_registry)/vmpulse-relay:$(TAG)" \
	  --region "$(call VMP_TFO,region)" --project "$(call VMP_TFO,project_id)"
	$(GCLOUD) run deploy "$(call VMP_TFO,web_service_name)" --image "$(call VMP_TFO,image_registry)/vmpulse-web:$(TAG)" \
	  --region "$(call VMP_TFO,region)" --project "$(call VMP_TFO,project_id)"

k8s-apply:
	$(VMP_K8S_ENV) bash $(VMP_ROOT)/k8s/deploy.sh apply

db-grant:
	$(VMP_K8S_ENV) bash $(VMP_ROOT)/k8s/deploy.sh grant

teardown:
	$(VMP_TF) destroy

# The VMs' bundle: a static linux/amd64 agent and the kernel module sources (built
# on the VM against its own kernel). terraform/templates/vm-startup.sh.tftpl
# installs it; terraform apply's Cloud Build run makes the same with this target.
vm-bundle:
	rm -rf $(VMP_OUT)/vm-bundle && mkdir -p $(VMP_OUT)/vm-bundle/bin
	cd $(VMP_ROOT) && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -buildvcs=false -trimpath -ldflags='-s -w' \
	  -o $(VMP_OUT)/vm-bundle/bin/vmpulse-agent ./agent/cmd/vmpulse-agent
	tar -C $(VMP_ROOT) --exclude='*.ko' --exclude='*.o' --exclude='*.mod' --exclude='*.mod.c' \
	  --exclude='.*.cmd' --exclude=Module.symvers --exclude=modules.order --exclude=.tmp_versions \
	  --exclude='*_test.go' --exclude=testdata -cf - kernel | tar -C $(VMP_OUT)/vm-bundle -xf -
	tar -C $(VMP_OUT)/vm-bundle -czf $(VMP_BUNDLE) bin kernel
	@echo "wrote $(VMP_BUNDLE)"

vm-push: vm-bundle
	$(GCLOUD) storage cp $(VMP_BUNDLE) "$(call VMP_TFO,agent_bundle_uri)"
	@echo "each VM installs it at its next boot, or now with:"
	@echo "  gcloud compute ssh VM --zone $(call VMP_TFO,vm_zone) --tunnel-through-iap --command 'sudo google_metadata_script_runner startup'"

.DEFAULT_GOAL := $(VMP_SAVED_DEFAULT_GOAL)
