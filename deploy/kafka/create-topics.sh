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

# One routing topic per category of the served taxonomy: TAXONOMY_FILE is the served checkpoint's
# taxonomy.csv (compose mounts schemas/taxonomy.csv, the default, unless TAXONOMY_FILE names another).
# Slugs as schemas.taxonomy.slug makes them; without an out_of_scope row, out-of-scope tickets take "Out of scope".
taxonomy=${TAXONOMY_FILE:?set TAXONOMY_FILE to the taxonomy.csv of the served checkpoint}

# "label<TAB>category" for each row of a taxonomy CSV; the header names the columns, fields may be quoted.
taxonomy_rows() {
  local line c field i label_col=-1 category_col=-1 quoted
  local -a fields
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    line=${line#$'\xef\xbb\xbf'}
    fields=() field="" quoted=0
    for ((i = 0; i < ${#line}; i++)); do
      c=${line:i:1}
      if ((quoted)); then
        if [[ $c == '"' ]]; then quoted=0; else field+=$c; fi
      elif [[ $c == '"' ]]; then quoted=1
      elif [[ $c == , ]]; then fields+=("$field") field=""
      else field+=$c; fi
    done
    fields+=("$field")
    if ((category_col < 0)); then
      for i in "${!fields[@]}"; do
        case ${fields[i]} in label | intent) label_col=$i ;; category) category_col=$i ;; esac
      done
      if ((label_col < 0 || category_col < 0)); then
        echo "$1: needs columns label,category,priority" >&2
        return 1
      fi
    elif [[ -n ${fields[category_col]:-} ]]; then
      printf '%s\t%s\n' "${fields[label_col]}" "${fields[category_col]}"
    fi
  done <"$1"
}

rows=$(taxonomy_rows "$taxonomy")
categories=$(cut -f2 <<<"$rows")
if ! cut -f1 <<<"$rows" | grep -qx out_of_scope; then
  categories+=$'\nOut of scope'
fi
mapfile -t category_slugs < <(tr '[:upper:]' '[:lower:]' <<<"$categories" | LC_ALL=C sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//' | sort -u)

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
