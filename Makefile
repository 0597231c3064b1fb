# swf-operator: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
CRD_FILE := crds/scheduledworkflows.kubeflow.org.yaml
## Where cargo builds ($CARGO_TARGET_DIR when set), for the binaries run from there.
BUILD_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test soak bench bench-smoke bench-deps assets test-deps cluster-up cluster-down crds check-crds lint fmt mutants mutants-diff
PLANE := $(CARGO) run --quiet --example local-plane --

## `make run`'s ports (each can be moved: `make run API_PORT=9888`). The local plane's own
## ports are SWF_CLUSTER_API_PORT (16443), SWF_CLUSTER_ETCD_PORT (12379) and
## SWF_CLUSTER_ETCD_PEER_PORT (12380), read by `make cluster-up` and `make run`.
API_PORT ?= 8888
GRPC_PORT ?= 8887
WEBHOOK_PORT ?= 9443
METRICS_PORT ?= 8080
## Where `make run` runs: `local` (the default: the local control plane, started if needed;
## $KUBECONFIG is ignored) or `current` (the cluster of kubectl's current context, which it
## names first; it applies crds/ and the quickstart there).
CLUSTER ?= local

## Run the operator in the foreground on the local control plane (or CLUSTER=current), with its
## admission webhook registered on loopback and Argo's Workflow CRD (a stand-in, for the Argo
## examples: no Argo controller runs them) there. Also builds the `kubectl swf` plugin
## (target/debug/kubectl-swf).
run: assets
	@set -e; \
	  case "$(CLUSTER)" in \
	  local) \
	    KUBECONFIG=$$($(PLANE) up); export KUBECONFIG; \
	    sed 's/127.0.0.1:9443/127.0.0.1:$(WEBHOOK_PORT)/' hack/local-webhook.yaml | kubectl apply -f -; \
	    kubectl apply -f tests/fixtures/argo-workflow-crd.yaml; \
	    webhook="--admission-addr 127.0.0.1:$(WEBHOOK_PORT)";; \
	  current) \
	    context=$$(kubectl config current-context) || \
	      { echo "run: CLUSTER=current, but kubectl has no current context" >&2; exit 2; }; \
	    echo "run: CLUSTER=current: context $$context, server $$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"; \
	    webhook="";; \
	  *) echo "run: CLUSTER is 'local' (the default) or 'current', not '$(CLUSTER)'" >&2; exit 2;; \
	  esac; \
	  echo "run: using KUBECONFIG=$${KUBECONFIG:-~/.kube/config}"; \
	  kubectl apply -f crds/; \
	  kubectl apply -f examples/quickstart.yaml; \
	  $(CARGO) build --bin kubectl-swf; \
	  $(CARGO) run -- run --leader-elect=false --api-addr 127.0.0.1:$(API_PORT) --grpc-addr 127.0.0.1:$(GRPC_PORT) \
	    --metrics-addr 127.0.0.1:$(METRICS_PORT) --api-plain-http --api-default-namespace default $$webhook

## Run every test (unit + integration on a real kube-apiserver).
test: assets test-deps check-crds
	$(CARGO) test --locked --workspace --all-targets

## The fault tests at full size: the operator SIGKILLed 100 times (CI: 12), failover,
## API server outage, lost watches; each prints its counts. Then the JobService's memory
## under 64 concurrent max-size requests per kind (CI: 8), with its peak RSS per phase. Then the
## reconcile simulation (src/controller/sim/) over 50,000 seeds in release mode (make test runs
## 400, 500 of the past-endTime family, 150 of the quick family and 200 of the failing family;
## make soak 5,000 of each family).
soak: assets
	SWF_FAULT_KILLS=100 $(CARGO) test --locked --test it faults:: -- --nocapture --test-threads=1
	SWF_MEMORY_LOAD=64 $(CARGO) test --locked --test it api_security::bodies_cost_memory -- --nocapture
	SWF_SIM_SEEDS=50000 SWF_SIM_PAST_END_SEEDS=5000 SWF_SIM_QUICK_SEEDS=5000 SWF_SIM_FAILING_SEEDS=5000 $(CARGO) test --locked --release --lib controller::sim:: -- --nocapture

## The benchmark: swf-operator beside Kubernetes' CronJob controller on fresh local control
## planes (about 30 minutes on 2 cores); prints the tables, writes target/bench/{results.csv,
## results.json,bench.png}. Bigger runs: BENCH_SWF_ONLY_SIZES=10000 BENCH_SHARDED_SIZES=20000.
## Start-up and memory with 10,000 schedules (BENCH_STARTUP_SCHEDULES): BENCH_PHASES=startup.
## Parts of it: e.g. BENCH_PHASES=scenarios BENCH_SIZES=1000 BENCH_ROWS=swf,floor BENCH_TICKS=2.
bench: assets bench-deps
	$(CARGO) build --release --locked --bin swf-operator --example bench
	$(BUILD_DIR)/release/examples/bench run

## The benchmark scaled down (CI): fails when swf-operator misses a run, doubles one or starts
## one before its tick (the CronJob controller's rows are data, not judged). The floor and the
## tuned CronJob rows are left out here (each is a scenario of its own, a minute or two).
bench-smoke: assets bench-deps
	$(CARGO) build --locked --bin swf-operator --example bench
	$(BUILD_DIR)/debug/examples/bench run --check --sizes 10 --ticks 1 --both-at 0 --list-jobs 200 \
	  --list-clients 5 --list-seconds 2 --startup-schedules 20 --cron-iterations 100 --rows swf,cronjob --settle-seconds 5 \
	  --out target/bench-smoke

## The plot's font, from Debian's archive.
bench-deps:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || \
	  { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core; }

## Debian's lua5.1 and lua-cjson (Argo CD's health check, as docs/guides/gitops.md runs it), prometheus (promtool, a real server)
## and chromium (headless, the browser of tests/it/ui.rs), and
## KFP's Python clients (kfp-server-api, kfp 1.8) in a venv under target/py, for the tests.
test-deps:
	@missing=""; command -v lua5.1 >/dev/null || missing="$$missing lua5.1"; \
	  lua5.1 -e 'require("cjson")' 2>/dev/null || missing="$$missing lua-cjson"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@test -x target/py/bin/python3 || python3 -m venv target/py
	@target/py/bin/python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

## Build or reuse kube-apiserver/etcd/kube-controller-manager (see hack/kube-assets.sh).
assets:
	@hack/kube-assets.sh >/dev/null

## A long-lived local control plane in .cluster/ (the same definition as the tests').
cluster-up: assets
	@$(PLANE) up

cluster-down:
	@$(PLANE) down

## Regenerate crds/ from the Rust types.
crds:
	$(CARGO) run --quiet -- crd > $(CRD_FILE)

## Fail when crds/ is stale.
check-crds:
	@$(CARGO) run --quiet --locked -- crd | diff -u $(CRD_FILE) - \
	  || { echo "crds/ is stale: run 'make crds'"; exit 1; }

## Mutation testing (cargo-mutants) of the scheduling core, the controller's pure parts,
## api/list.rs and admission/review.rs, against the unit and mock-API tests (the files are in
## .cargo/mutants.toml; docs/testing.md has the last report). About 30 s a mutant on 2 cores
## (some 750 mutants), so narrow it: `make mutants MUTANTS_FILE=src/scheduling/ticks.rs`, or shard it
## with MUTANTS_ARGS='--shard 1/8'.
MUTANTS_VERSION := 27.1.0
## The simulation's seeds take half a minute a mutant: left out (the report says so).
MUTANTS_SKIP := --skip controller::sim::
MUTANTS_ONE_FILE = --no-config --file '$(MUTANTS_FILE)' --profile mutants --cargo-arg=--lib --timeout-multiplier 3
mutants:
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants@$(MUTANTS_VERSION)
	$(CARGO) mutants $(if $(MUTANTS_FILE),$(MUTANTS_ONE_FILE)) $(MUTANTS_ARGS) -- -- $(MUTANTS_SKIP)

## Mutation testing of the lines a change touches (since BASE, default main).
BASE ?= main
mutants-diff:
	@command -v cargo-mutants >/dev/null || $(CARGO) install --locked cargo-mutants@$(MUTANTS_VERSION)
	@mkdir -p target && git diff $(BASE) -- src > target/mutants.diff
	$(CARGO) mutants --in-diff target/mutants.diff $(MUTANTS_ARGS) -- -- $(MUTANTS_SKIP)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	shellcheck hack/*.sh .ci/run

fmt:
	$(CARGO) fmt --all
