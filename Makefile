# modelship — every developer and CI entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= operator,runtime,convert,convert-tf,dev
export MODELSHIP_CACHE ?= $(HOME)/.cache/modelship
export KUBECONFIG_LOCAL := $(CURDIR)/.cluster/kubeconfig

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

# --- Python environment -----------------------------------------------------
$(VENV)/.stamp: pyproject.toml hack/venv.sh
	@bash hack/venv.sh "$(VENV)" "$(EXTRAS)"
	@touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## create the virtualenv with every extra (uv, cached under ~/.cache)

# --- Quality ----------------------------------------------------------------
.PHONY: lint
lint: venv promtool ## ruff, mypy --strict, promtool check rules
	$(VENV)/bin/ruff check operator serving-runtime tests hack
	$(VENV)/bin/ruff format --check operator serving-runtime tests hack
	$(VENV)/bin/mypy operator/modelship serving-runtime/modelship_runtime
	$(PY) hack/check_rules.py "$$(source hack/versions.sh && echo $$PROMETHEUS_BIN)/promtool"

.PHONY: promtool
promtool: ## build Prometheus and its promtool from the Go module proxy (cached by version)
	@bash hack/build-monitoring.sh prometheus

.PHONY: fmt
fmt: venv ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix operator serving-runtime tests hack
	$(VENV)/bin/ruff format operator serving-runtime tests hack

.PHONY: crds
crds: venv ## regenerate crds/ from the pydantic API models (operator/modelship/api.py), then the chart's copy
	$(PY) -m modelship.crd
	$(PY) hack/chart.py

.PHONY: chart
chart: venv ## refresh charts/modelship's generated files (CRD, RBAC rules, alerts, dashboards, values schema)
	$(PY) hack/chart.py

# --- Tests --------------------------------------------------------------------
.PHONY: test
test: lint binaries images ## the whole suite: lint, unit, integration, e2e (starts and stops a cluster if none runs)
	$(PY) -m pytest tests -p no:cacheprovider

.PHONY: test-unit
test-unit: venv ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit

.PHONY: test-integration
test-integration: venv binaries ## integration tests against a real apiserver
	$(PY) -m pytest tests/integration

# --- Local cluster ------------------------------------------------------------
.PHONY: binaries
binaries: ## build Kubernetes, etcd, CoreDNS, MinIO, Prometheus, prometheus-operator, Contour, Helm and the Go checkers (kstatus, Argo CD health) from the Go module proxy, fetch Envoy (cached by version)
	@bash hack/build-binaries.sh all
	@bash hack/build-s3.sh >/dev/null
	@bash hack/build-monitoring.sh all
	@bash hack/build-go-tool.sh kind-check >/dev/null
	@bash hack/build-go-tool.sh kstatus >/dev/null
	@bash hack/build-go-tool.sh argocd-health >/dev/null
	@bash hack/build-go-tool.sh helm >/dev/null
	@bash hack/build-gateway.sh

.PHONY: cluster-up
cluster-up: binaries ## start the local cluster (no-op when up); kubeconfig in .cluster/kubeconfig
	@bash hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the local cluster; no process is left behind
	@bash hack/cluster.sh down

.PHONY: cluster-status
cluster-status: ## health of every cluster component
	@bash hack/cluster.sh status

# --- Demo ---------------------------------------------------------------------
.PHONY: demo
demo: venv images cluster-up ## the main job end to end: cluster, operator, a model served, one inference
	@bash hack/demo.sh

# --- Images -------------------------------------------------------------------
.PHONY: images
images: venv ## build the pause, runtime, operator and Prometheus images from a Debian rootfs (cached by input hash)
	@bash hack/images.sh build

# --- Benchmarks (never part of `make test`) ------------------------------------
.PHONY: bench-runtime
bench-runtime: venv ## serving runtime vs raw ORT, an ASGI floor and peer servers
	$(PY) tests/bench/bench_runtime.py

.PHONY: profile-runtime
profile-runtime: venv ## py-spy on the runtime under load: the share of each stage of a request
	$(PY) tests/bench/profile_runtime.py

.PHONY: bench-overload
bench-overload: venv ## the runtime flooded at 1x, 2x and 3x its capacity: shed 503s, p99 of admitted, RSS
	$(PY) tests/bench/bench_overload.py

.PHONY: bench-build
bench-build: venv ## variants of the 784-1024-1024-10 MLP: FP32 vs INT8 vs FP16
	$(PY) tests/bench/bench_build.py

.PHONY: bench-rollout
bench-rollout: venv binaries images ## erroring, slow and good canary under load: time to rollback vs its bound, lost requests
	$(PY) -m pytest tests/integration/operator/bench_rollout.py -p no:cacheprovider -q -s

.PHONY: bench-operator
bench-operator: venv binaries ## N = 100 and 1000 ModelDeployments: time to reconcile, RSS, API calls
	$(PY) tests/bench/bench_operator.py
