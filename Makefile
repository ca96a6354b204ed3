# stowage — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup install lint crds csi-proto unit test demo cluster-up cluster-down bench

setup:  ## Python venv with the pinned dependencies
	@bash scripts/setup-python.sh

install:  ## everything the suite, demo and benches use from outside, fetched once (cached)
	@bash scripts/install.sh

lint: setup  ## ruff, mypy --strict, and the generated CRDs up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

crds: setup  ## regenerate crds/ from the pydantic models
	$(PY) -m stowage.api.crds --write crds/

csi-proto: setup  ## regenerate operator/stowage/csi/proto from the CSI spec and the kubelet's registration API
	@bash scripts/csi-proto.sh

unit: setup
	$(VENV)/bin/pytest -m unit

test:  ## the whole suite: lint, unit, integration, e2e on a real local cluster
	@bash scripts/test.sh

demo:  ## the main job: local cluster, stowage installed, real volumes shown
	@bash scripts/demo.sh

cluster-up:
	@bash e2e/cluster.sh up

cluster-down:
	@bash e2e/cluster.sh down
