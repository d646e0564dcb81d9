# OneWindow — every set-up step lives here, so a fresh Debian machine with Swift needs only
# `make demo` and `make test` (see README.md).
SHELL := /bin/bash
SWIFT ?= swift
# System packages: librdkafka (the Kafka backend links it), kcat (interop tests), SQLite headers,
# jemalloc (the executables' allocator).
APT_PACKAGES := librdkafka-dev kcat libsqlite3-dev pkg-config libjemalloc-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build demo test bench reliability fuzz clean openapi openapi-check

all: build

## Installs the missing system packages with apt-get (once; later runs only check).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build --product onewindow

## The main job on the embedded bus: no broker needed.
demo: build
	.build/debug/onewindow demo

## Every test: unit tests, the conformance suite on both backends, Kafka integration tests against
## a Kafka-protocol broker (Tansu) that the script starts on a free loopback port and stops after.
## Five runs, one after another:
## - the services that run as processes (orchestrator, citizen services, shared view) apart from
##   the rest, and the gateway, its subscriptions and access control with the hostile-input suite
##   (HTTP servers, SQLite pools and the processes of their command tests) apart again. They were
##   split off because Foundation's Process.run (Swift 6.3.1) crashed the test process when about
##   1,350 descriptors were open (the run of the rest alone peaks at 1,627): the tests now start
##   their children with Tests/TestSupport/ChildProcess.swift, which lists no descriptors, so that
##   crash is gone; the groups stay apart because fewer tests side by side load the two cores less;
## - the broker-outage test alone: it cuts connections and times what is in flight across the cut,
##   so it does not run beside the suite's dozens of processes on two cores.
## - the reliability suite alone (Tests/ReliabilityTests: kills under load on both backends, a broker
##   outage, a soak, each a dozen processes; the short versions took 77 + 61 + 45 s on 2026-11-29 at
##   a load average of 25): it starts and kills child processes by the dozen, and its figures
##   (recovery times, memory) would measure the rest;
## - before them, the catalog and schemas against the last release tag (scripts/check-schema-evolution.sh:
##   a change that breaks the readers of events already on the log fails here, naming each change).
SERVICE_TESTS := OrchestratorServiceTests|CitizenServicesTests|SharedViewTests
GATEWAY_TESTS := GatewayTests|SubscriptionsTests|AccessControlTests|HostileInputTests
OUTAGE_TESTS := BrokerOutageTests
RELIABILITY_TESTS := ReliabilityTests
test: deps openapi-check
	scripts/with-test-broker.sh bash -c '$(SWIFT) build --build-tests \
	  && scripts/check-schema-evolution.sh "$$($(SWIFT) build --show-bin-path)/onewindow" \
	  && $(SWIFT) test --skip-build --skip "$(SERVICE_TESTS)|$(GATEWAY_TESTS)|$(OUTAGE_TESTS)|$(RELIABILITY_TESTS)" \
	  && $(SWIFT) test --skip-build --filter "$(SERVICE_TESTS)" \
	  && $(SWIFT) test --skip-build --filter "$(GATEWAY_TESTS)" \
	  && $(SWIFT) test --skip-build --filter $(OUTAGE_TESTS) \
	  && $(SWIFT) test --skip-build --filter $(RELIABILITY_TESTS)'

## The gateway's interface from its OpenAPI document (Sources/Gateway/openapi.yaml): generated once
## and committed (Sources/Gateway/README.md says why); `make test` checks it is current.
openapi:
	scripts/openapi.sh generate

openapi-check:
	scripts/openapi.sh check

## Throughput figures into BENCHMARKS.md (release build).
bench: deps
	scripts/bench.sh

## Reliability, measured (issue 12): the full version of each reliability test (make test runs the
## short one), its figures written into RELIABILITY.md with the commands, the machine and the date;
## ONEWINDOW_RELIABILITY_ONLY=REGEX runs some parts and keeps the others' sections (docs/reliability/).
reliability: deps
	scripts/reliability.sh

## Fuzzing (issue 12, Fuzz/README.md): each libFuzzer target for FUZZ_SECONDS (default 60) with the
## address sanitizer, built in .build-fuzz; the corpus in Fuzz/corpus/ is merged and minimised.
fuzz: deps
	scripts/fuzz.sh

clean:
	rm -rf .build .build-* var
