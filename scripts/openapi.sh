#!/usr/bin/env bash
# Usage: scripts/openapi.sh generate | check
#
# The gateway's interface (Sources/Gateway/Generated) is generated from its OpenAPI document
# (Sources/Gateway/openapi.yaml) once, by swift-openapi-generator's command-line tool, and
# committed, instead of by the generator's build plugin: the plugin builds the generator and
# OpenAPIKit in every fresh build, which CI (a new clone on two cores) would pay at each run
# (measured in Sources/Gateway/README.md).
#
#   generate  builds the generator (GENERATOR_VERSION, in .build-openapi/), regenerates the code
#             and records the SHA-256 of the document, the configuration and the generated files
#             in Sources/Gateway/Generated/openapi.sha256.
#   check     (make test) fails when the document, the configuration or the generated code is not
#             what was generated together: someone edited openapi.yaml without `make openapi`, or
#             edited the generated code by hand. It needs no generator, so it costs CI nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
GENERATOR_VERSION=1.14.3
gateway=Sources/Gateway
generated=$gateway/Generated
sums=$generated/openapi.sha256

record() {
  (sha256sum "$gateway/openapi.yaml" "$gateway/openapi-generator-config.yaml" "$generated"/*.swift
   echo "# swift-openapi-generator $GENERATOR_VERSION") >"$sums"
}

case "${1:-}" in
  generate)
    # OPENAPI_GENERATOR names a swift-openapi-generator $GENERATOR_VERSION already built.
    tool=${OPENAPI_GENERATOR:-}
    if [ -z "$tool" ]; then
      work=.build-openapi
      if [ ! -d "$work/swift-openapi-generator" ]; then
        mkdir -p "$work"
        git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$GENERATOR_VERSION" \
          https://github.com/apple/swift-openapi-generator "$work/swift-openapi-generator"
      fi
      swift build --package-path "$work/swift-openapi-generator" --product swift-openapi-generator
      tool="$(swift build --package-path "$work/swift-openapi-generator" --show-bin-path)/swift-openapi-generator"
    fi
    rm -f "$generated"/*.swift
    "$tool" generate --config "$gateway/openapi-generator-config.yaml" --output-directory "$generated" \
      "$gateway/openapi.yaml"
    record
    echo "generated $generated from $gateway/openapi.yaml (swift-openapi-generator $GENERATOR_VERSION)"
    ;;
  check)
    if ! grep -q "swift-openapi-generator $GENERATOR_VERSION" "$sums" 2>/dev/null \
      || ! sha256sum --check --quiet --strict <(grep -v '^#' "$sums") 2>/dev/null; then
      echo "error: $generated is not what $gateway/openapi.yaml generates (the document, its configuration or the generated code changed since the last 'make openapi'); run 'make openapi' and commit the result" >&2
      exit 1
    fi
    listed=$(grep -c '\.swift$' "$sums")
    present=$(ls "$generated"/*.swift | wc -l)
    if [ "$listed" != "$present" ]; then
      echo "error: $generated holds $present Swift files but the last 'make openapi' made $listed; run 'make openapi'" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: scripts/openapi.sh generate | check" >&2
    exit 64
    ;;
esac
