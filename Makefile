# swf-operator: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
CRD_FILE := crds/scheduledworkflows.kubeflow.org.yaml

.PHONY: run test soak bench bench-smoke bench-deps assets test-deps cluster-up cluster-down crds check-crds lint fmt
PLANE := $(CARGO) run --quiet --example local-plane --

## Run the operator in the foreground: on $KUBECONFIG when set, else on a local control plane
## (there with its admission webhook registered on loopback). Also builds the `kubectl swf`
## plugin (target/debug/kubectl-swf).
run: assets
	@if [ -z "$$KUBECONFIG" ]; then \
	    export KUBECONFIG=$$($(PLANE) up) && kubectl apply -f hack/local-webhook.yaml && \
	    webhook="--admission-addr 127.0.0.1:9443"; \
	  fi; \
	  echo "run: using KUBECONFIG=$$KUBECONFIG"; \
	  kubectl apply -f crds/ && \
	  kubectl apply -f examples/quickstart.yaml && \
	  $(CARGO) build --bin kubectl-swf && \
	  $(CARGO) run -- run --leader-elect=false --api-addr 127.0.0.1:8888 --grpc-addr 127.0.0.1:8887 \
	    --api-plain-http --api-default-namespace default $$webhook

## Run every test (unit + integration on a real kube-apiserver).
test: assets test-deps check-crds
	$(CARGO) test --locked --all-targets

## The fault tests at full size: the operator SIGKILLed 100 times (CI: 12), failover,
## API server outage, lost watches; each prints its counts. Then the reconcile simulation
## (src/controller/sim/) over 50,000 seeds in release mode (make test runs 260, 100 of the past-endTime family and 40 of the quick family; make soak 5,000 of each family).
soak: assets
	SWF_FAULT_KILLS=100 $(CARGO) test --locked --test it faults:: -- --nocapture --test-threads=1
	SWF_SIM_SEEDS=50000 SWF_SIM_PAST_END_SEEDS=5000 SWF_SIM_QUICK_SEEDS=5000 $(CARGO) test --locked --release --lib controller::sim:: -- --nocapture

## The benchmark: swf-operator beside Kubernetes' CronJob controller on fresh local control
## planes (about 30 minutes on 2 cores); prints the tables, writes target/bench/{results.csv,
## results.json,bench.png}. Bigger runs: BENCH_SWF_ONLY_SIZES=10000 BENCH_SHARDED_SIZES=20000.
bench: assets bench-deps
	$(CARGO) build --release --locked --bin swf-operator --example bench
	target/release/examples/bench run

## The benchmark scaled down (CI): fails when a run is missed or doubled.
bench-smoke: assets bench-deps
	$(CARGO) build --locked --bin swf-operator --example bench
	target/debug/examples/bench run --check --sizes 10 --ticks 1 --both-at 0 --list-jobs 200 \
	  --list-clients 5 --list-seconds 2 --cron-iterations 100 --out target/bench-smoke

## The plot's font, from Debian's archive.
bench-deps:
	@test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || \
	  { apt-get update -qq && apt-get install -y -qq fonts-dejavu-core; }

## Debian's lua5.1 (Argo CD's health check) and prometheus (promtool, a real server), and
## KFP's Python clients (kfp-server-api, kfp 1.8) in a venv under target/py, for the tests.
test-deps:
	@missing=""; command -v lua5.1 >/dev/null || missing="$$missing lua5.1"; \
	  command -v promtool >/dev/null || missing="$$missing prometheus"; \
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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	shellcheck hack/*.sh .ci/run

fmt:
	$(CARGO) fmt --all
