#!/usr/bin/env bash
# Creates OneWindow's SCRAM users, their ACLs (docs/KAFKA.md, "Principals and ACLs") and one
# librdkafka properties file per user (security settings only: the bus address stays --bus), for a Kafka cluster with SASL/SCRAM and an authorizer.
# compose.sasl.yaml runs it once in the `kafka-security` job; on another cluster run it with the
# Kafka tools on PATH (or KAFKA_BIN set) and an admin connection.
#
# Environment:
#   BOOTSTRAP         an admin listener (default kafka:9091, compose's broker-only listener)
#   ADMIN_CONFIG      a --command-config file for that listener (default: none, PLAINTEXT)
#   SCRAM_SECRET      the password of every user is "$SCRAM_SECRET-<user>" (default: onewindow-dev);
#                     a real deployment gives each user its own secret from its vault instead
#   OUT               where the properties files go (default /clients), <user>.properties each
#   KAFKA_BIN         the Kafka tools (default /opt/kafka/bin)
set -euo pipefail
BOOTSTRAP=${BOOTSTRAP:-kafka:9091}
SCRAM_SECRET=${SCRAM_SECRET:-onewindow-dev}
OUT=${OUT:-/clients}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
admin=(--bootstrap-server "$BOOTSTRAP")
[ -n "${ADMIN_CONFIG:-}" ] && admin+=(--command-config "$ADMIN_CONFIG")

# Department → the prefix of the fact topics it owns (Topics/catalog.yaml).
declare -A FACTS=(
    [household-registry]=household. [social-security]=socialsecurity. [tax]=tax. [real-estate]=realestate.
    [market-regulation]=market. [food-safety]=foodsafety. [fire-safety]=firesafety.
    [environment]=environment. [urban-management]=urban.
)
WORKFLOWS=(restaurant house-transfer graduate-registration death-aftercare pension-certification)
DEAD=deadletter.record.refused

user() { # user NAME: a SCRAM-SHA-512 credential and its properties file
    local name=$1 password="$SCRAM_SECRET-$1"
    "$KAFKA_BIN/kafka-configs.sh" "${admin[@]}" --alter --entity-type users --entity-name "$name" \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]" >/dev/null
    mkdir -p "$OUT"
    printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=%s\nsasl.password=%s\n' \
        "$name" "$password" >"$OUT/$name.properties"
    chmod 644 "$OUT/$name.properties"
    echo "user $name"
}
acl() { # acl USER OPERATION... -- RESOURCE-ARGUMENTS...
    local principal=User:$1; shift
    local operations=()
    while [ "$1" != -- ]; do operations+=(--operation "$1"); shift; done
    shift
    "$KAFKA_BIN/kafka-acls.sh" "${admin[@]}" --add --allow-principal "$principal" "${operations[@]}" "$@" >/dev/null
}
readers() { # the private groups of CLI reads and lag look-ups (onewindow-reader-<uuid>, onewindow-admin-<uuid>)
    acl "$1" Read -- --group onewindow-reader- --resource-pattern-type prefixed
    acl "$1" Read -- --group onewindow-admin- --resource-pattern-type prefixed
}

# The topics job: creates the catalog's topics.
user onewindow-admin
acl onewindow-admin Create -- --cluster
acl onewindow-admin Describe DescribeConfigs -- --topic '*'
readers onewindow-admin

# Each department's connector (and the department's own system, if it connects itself).
for department in "${!FACTS[@]}"; do
    name=connector-$department
    user "$name"
    acl "$name" Write -- --topic "${FACTS[$department]}" --resource-pattern-type prefixed
    acl "$name" Write -- --topic "approval.$department.decided"
    acl "$name" Read -- --topic "approval.$department.requested"
    acl "$name" Write -- --topic "$DEAD"
    acl "$name" Read -- --group "connector.$department." --resource-pattern-type prefixed
    readers "$name"
done
# The SMS gateway's connector (department onewindow): the text messages to send.
user connector-sms-gateway
acl connector-sms-gateway Read -- --topic notification.sms.requested
acl connector-sms-gateway Read -- --group connector.sms-gateway. --resource-pattern-type prefixed
readers connector-sms-gateway

# The orchestrator: applications and decisions in; requests, progress and messages out.
user onewindow-orchestrator
acl onewindow-orchestrator Read -- --topic application. --resource-pattern-type prefixed
acl onewindow-orchestrator Write -- --topic application.progress.updated
acl onewindow-orchestrator Write -- --topic notification.sms.requested
acl onewindow-orchestrator Write -- --topic "$DEAD"
for department in "${!FACTS[@]}"; do
    acl onewindow-orchestrator Read -- --topic "approval.$department.decided"
    acl onewindow-orchestrator Write -- --topic "approval.$department.requested"
done
acl onewindow-orchestrator Read -- --group onewindow.orchestrator
readers onewindow-orchestrator

# The citizen services and the shared data view: the departments' facts in.
for service in citizen-services shared-view; do
    name=onewindow-$service
    user "$name"
    for department in "${!FACTS[@]}"; do
        acl "$name" Read -- --topic "${FACTS[$department]}" --resource-pattern-type prefixed
    done
    acl "$name" Write -- --topic supervision.alert.raised
    acl "$name" Write -- --topic "$DEAD"
    acl "$name" Read -- --group "onewindow.$service"
    readers "$name"
done
acl onewindow-citizen-services Read -- --topic application.progress.updated
acl onewindow-citizen-services Write -- --topic application.death-aftercare.submitted
acl onewindow-citizen-services Write -- --topic application.pension-certification.submitted
acl onewindow-citizen-services Write -- --topic notification.sms.requested

# The HTTP gateway: acts for departments, downstream systems and applicants, whose grants it
# checks itself; on Kafka it needs the union of what it serves.
user onewindow-gateway
for workflow in "${WORKFLOWS[@]}"; do
    acl onewindow-gateway Write -- --topic "application.$workflow.submitted"
done
acl onewindow-gateway Write -- --topic application.step.resubmitted
acl onewindow-gateway Write -- --topic "$DEAD"
for department in "${!FACTS[@]}"; do
    acl onewindow-gateway Write -- --topic "${FACTS[$department]}" --resource-pattern-type prefixed
done
acl onewindow-gateway Read -- --topic '*'
acl onewindow-gateway Read -- --group gateway. --resource-pattern-type prefixed
readers onewindow-gateway

# The audit recorder: every department's decisions in, nothing out but its own log file.
user onewindow-audit
for department in "${!FACTS[@]}"; do
    acl onewindow-audit Read -- --topic "approval.$department.decided"
done
acl onewindow-audit Read -- --group onewindow.audit
readers onewindow-audit

# An operator: replay (moving any group) and dead letters (read, redrive anywhere, purge).
user ops-oncall
acl ops-oncall Describe Read -- --topic '*'
acl ops-oncall Write -- --topic '*'
acl ops-oncall Delete -- --topic "$DEAD"
acl ops-oncall Describe Read -- --group '*'
readers ops-oncall

# A downstream system, e.g. the tax bureau's data hub, reading the topics it was granted.
user downstream-tax-datahub
acl downstream-tax-datahub Read -- --topic market.business.registered
acl downstream-tax-datahub Read -- --topic realestate.registration.completed
acl downstream-tax-datahub Read -- --group downstream.tax-datahub. --resource-pattern-type prefixed
readers downstream-tax-datahub

echo "SCRAM users, ACLs and $OUT/<user>.properties ready"
