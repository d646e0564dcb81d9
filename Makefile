# OneWindow — every set-up step lives here, so a fresh Debian machine with Swift needs only
# `make demo` and `make test` (see README.md).
SHELL := /bin/bash
SWIFT ?= swift
# System packages: librdkafka (the Kafka backend links it), kcat (interop tests), SQLite headers.
APT_PACKAGES := librdkafka-dev kcat libsqlite3-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build demo test bench clean

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
## The broker-outage test cuts connections and times what is in flight across the cut, so it runs
## on its own after the rest, not beside the suite's dozens of processes on two cores.
OUTAGE_TESTS := BrokerOutageTests
test: deps
	scripts/with-test-broker.sh bash -c '$(SWIFT) test --skip $(OUTAGE_TESTS) && $(SWIFT) test --skip-build --filter $(OUTAGE_TESTS)'

## Throughput figures into BENCHMARKS.md (release build).
bench: deps
	scripts/bench.sh

clean:
	rm -rf .build .build-* var
