#!/usr/bin/env bash
# The kafka-format service of docker-compose.yml: formats the broker's storage with its
# SASL/SCRAM users before the broker's first start.
#
# The apache/kafka image formats its storage itself at every start (KafkaDockerWrapper
# setup runs `kafka-storage format --cluster-id $CLUSTER_ID`) but offers no way to pass
# --add-scram, and goes on when the storage is "already formatted". So this one-shot,
# same image and same volume, formats first, with the users: the broker then finds its
# storage formatted, with the credentials in its metadata. Later runs change nothing
# (--ignore-formatted): users and passwords are set at the first format only.
set -euo pipefail

for name in CLUSTER_ID KAFKA_LOG_DIRS BROKER_USERNAME BROKER_PASSWORD SERVICES_USERNAME SERVICES_PASSWORD; do
  if [[ -z "${!name:-}" ]]; then
    echo "kafka-format: $name is not set" >&2
    exit 1
  fi
done

# The broker's configuration, from the same KAFKA_* variables, named the way the image
# names them (KafkaDockerWrapper): KAFKA_ dropped, lower case, "_" -> ".", "___" -> "-",
# "__" -> "_"; its JVM and logging variables skipped. Not the JAAS line, which formatting
# does not read: the file then holds no password.
config=$(mktemp)
for name in $(compgen -e | grep '^KAFKA_' | sort); do
  case "$name" in
    KAFKA_VERSION|KAFKA_HEAP_OPTS|KAFKA_LOG4J_OPTS|KAFKA_OPTS|KAFKA_JMX_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|\
    KAFKA_GC_LOG_OPTS|KAFKA_LOG4J_ROOT_LOGLEVEL|KAFKA_LOG4J_LOGGERS|KAFKA_TOOLS_LOG4J_LOGLEVEL|\
    KAFKA_JMX_HOSTNAME|*_SASL_JAAS_CONFIG) continue ;;
  esac
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//_/.}
  key=${key//.../-}
  key=${key//../_}
  printf '%s=%s\n' "$key" "${!name}" >> "$config"
done

scram() { printf 'SCRAM-SHA-512=[name=%s,password=%s]' "$1" "$2"; }
status=0
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id="$CLUSTER_ID" -c "$config" \
  --add-scram "$(scram "$BROKER_USERNAME" "$BROKER_PASSWORD")" \
  --add-scram "$(scram "$SERVICES_USERNAME" "$SERVICES_PASSWORD")" || status=$?
rm -f "$config"
exit "$status"
