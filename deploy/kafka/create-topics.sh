#!/usr/bin/env bash
# Create every topic the worker reads or writes; safe to run any number of times (--if-not-exists).
#
# Runs in the apache/kafka image as the compose `topic-init` job, or by hand against any cluster:
#   TRIAGE_BROKERS=broker:9092 KAFKA_ADMIN_CONFIG=admin.properties deploy/kafka/create-topics.sh
# Topic names come from the same TRIAGE_TOPICS__* variables the worker reads, so the two agree. In
# production the worker's principal needs no create rights: an operator runs this once per change.
# KAFKA_ADMIN_CONFIG names a client properties file (security.protocol, sasl.*, ssl.*) for a secured
# cluster. Partition counts are only ever set at creation; to grow the input topic later see
# docs/operations.md ("Scaling").
set -euo pipefail

kafka_bin=${KAFKA_BIN:-/opt/kafka/bin}
bootstrap=${TRIAGE_BROKERS:?set TRIAGE_BROKERS to the Kafka bootstrap servers, e.g. kafka:9092}
partitions=${TRIAGE_TOPICS__PARTITIONS:-3}
replication=${TRIAGE_TOPICS__REPLICATION_FACTOR:-1}
route_prefix=${TRIAGE_TOPICS__ROUTE_PREFIX:-tickets.route.}

# One routing topic per category: schemas.enums.Category slugs (tests/deploy checks this list).
category_slugs=(billing account-login technical order-delivery general-inquiry)

topics=(
  "${TRIAGE_TOPICS__INCOMING:-tickets.incoming}"
  "${TRIAGE_TOPICS__ENRICHED:-tickets.enriched}"
  "${TRIAGE_TOPICS__ONCALL:-tickets.oncall}"
  "${TRIAGE_TOPICS__REVIEW:-tickets.review}"
  "${TRIAGE_TOPICS__DEADLETTER:-tickets.deadletter}"
)
for slug in "${category_slugs[@]}"; do
  topics+=("${route_prefix}${slug}")
done

admin_args=(--bootstrap-server "${bootstrap%%,*}")
if [[ -n "${KAFKA_ADMIN_CONFIG:-}" ]]; then
  admin_args+=(--command-config "$KAFKA_ADMIN_CONFIG")
fi

for topic in "${topics[@]}"; do
  "$kafka_bin/kafka-topics.sh" "${admin_args[@]}" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor "$replication"
done

# Show the input topic's layout in the job's log: its partition count caps the useful worker count.
"$kafka_bin/kafka-topics.sh" "${admin_args[@]}" --describe --topic "${topics[0]}"
