#!/usr/bin/env bash
# Kafka's command-line tools inside the kafka container, logged in over SASL/SCRAM as the
# broker's user (the healthcheck uses it too):
#   docker compose exec kafka bash /opt/alfi/kafka-admin.sh kafka-topics --list
#   docker compose exec kafka bash /opt/alfi/kafka-admin.sh kafka-consumer-groups --list
# runs /opt/kafka/bin/<tool>.sh --bootstrap-server localhost:9092 --command-config <file>
# with the rest of the arguments. Tools taking the file under another option (the console
# consumer's --consumer.config) can use /tmp/alfi-admin.properties once this has run.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: kafka-admin.sh <tool, e.g. kafka-topics> [arguments...]" >&2
  exit 2
fi
for name in ADMIN_USERNAME ADMIN_PASSWORD; do
  if [[ -z "${!name:-}" ]]; then
    echo "kafka-admin: $name is not set" >&2
    exit 1
  fi
done

properties=/tmp/alfi-admin.properties
umask 077
cat > "$properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$ADMIN_USERNAME" password="$ADMIN_PASSWORD";
PROPERTIES

tool=$1
shift
exec "/opt/kafka/bin/$tool.sh" --bootstrap-server localhost:9092 --command-config "$properties" "$@"
