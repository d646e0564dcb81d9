#!/usr/bin/env bash
# Usage: scripts/schemathesis.sh BASE_URL API_KEY
#
# Runs Schemathesis (installed in .venv by scripts/test-tools.sh, pinned there) against a live
# gateway from its OpenAPI document, Sources/Gateway/openapi.yaml: every operation with generated
# requests, checking that no answer is a server error and that every answer's status, content type,
# headers and body are what the document says. Tests/GatewayTests runs it against a gateway it
# started (make test); run it by hand against any gateway with a key the front desk holds.
# SCHEMATHESIS_EXAMPLES sets the examples per operation (default 40); the seed is fixed, so a run
# is repeatable.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: scripts/schemathesis.sh BASE_URL API_KEY" >&2
  exit 64
fi
tool=.venv/bin/schemathesis
if [ ! -x "$tool" ]; then
  echo "error: $tool is missing: run scripts/test-tools.sh" >&2
  exit 69
fi
exec "$tool" run Sources/Gateway/openapi.yaml --url "$1" \
  --header "Authorization: Bearer $2" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" --seed 11 --no-color
