# Entry points for people and CI. Each target is a thin call into scripts/.
SHELL := /bin/bash
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/.venv/bin:$(PATH)

CHARTS_DIR ?= charts

.PHONY: setup tools charts test test-unit lint sanity test-integration test-molecule cluster-up cluster-down site benchmarks

setup:            ## install everything (apt when root, .venv, collections, Kubernetes binaries)
	bash scripts/setup.sh

tools:            ## build the local Kubernetes binaries (cached)
	bash scripts/build-tools.sh

charts:           ## pull the pinned charts and their digests into CHARTS_DIR (needs network; see docs)
	bash scripts/charts.sh pull $(CHARTS_DIR)

test: setup       ## everything CI runs
	bash scripts/test.sh all

test-unit: setup
	bash scripts/test.sh unit

lint: setup
	bash scripts/test.sh lint

sanity: setup
	bash scripts/test.sh sanity

test-integration: setup
	bash scripts/test.sh integration

test-molecule: setup
	bash scripts/test.sh molecule

cluster-up: setup ## start the local cluster (real control plane, simulated GPU nodes)
	bash scripts/cluster.sh up

cluster-down:     ## stop the local cluster and remove its state
	bash scripts/cluster.sh down

site: setup       ## the main job on the local default cluster
	bash scripts/site.sh

benchmarks: setup
	bash scripts/benchmarks.sh
