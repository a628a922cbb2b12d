{{/*
What each service reads and writes on Kafka, from its definition (services/<name>/service.py,
services/common/service.py Runtime.start; tests/unit/test_deploy_helm.py derives the same
from the code and compares):
- consumes: the topics of its consumers. Command services read their command topic;
  casework and veille replicate households from intake's events; intake follows contacts
  in casework's and veille's events; stats projects the three event topics.
- writes: its own event topic (its outbox relay), and dead letters: `<topic>.dlq` of
  every topic it consumes (a record it cannot apply) and of its own event topic (a row
  the broker refuses). Never another service's events or any command topic.
- ensures: the topics its relay checks at start (Describe only: Strimzi creates them).
- groups: its consumer groups all start with alfi-<service>- (stats' rebuild makes
  alfi-stats-rebuild-<n>-<id> groups).
*/}}
{{- define "alfi.kafkaAccess" -}}
intake:
  consumes: [alfi.intake.commands, alfi.casework.events, alfi.veille.events]
  writes: [alfi.intake.events, alfi.intake.events.dlq, alfi.intake.commands.dlq, alfi.casework.events.dlq, alfi.veille.events.dlq]
  ensures: [alfi.intake.events, alfi.intake.commands, alfi.intake.commands.dlq]
casework:
  consumes: [alfi.casework.commands, alfi.intake.events]
  writes: [alfi.casework.events, alfi.casework.events.dlq, alfi.casework.commands.dlq, alfi.intake.events.dlq]
  ensures: [alfi.casework.events, alfi.casework.commands, alfi.casework.commands.dlq]
veille:
  consumes: [alfi.veille.commands, alfi.intake.events]
  writes: [alfi.veille.events, alfi.veille.events.dlq, alfi.veille.commands.dlq, alfi.intake.events.dlq]
  ensures: [alfi.veille.events, alfi.veille.commands, alfi.veille.commands.dlq]
stats:
  consumes: [alfi.intake.events, alfi.casework.events, alfi.veille.events]
  writes: [alfi.intake.events.dlq, alfi.casework.events.dlq, alfi.veille.events.dlq]
  ensures: [alfi.intake.events.dlq, alfi.casework.events.dlq, alfi.veille.events.dlq]
{{- end -}}

{{/* Every alfi topic: per producing service, its events, commands and their dead letters. */}}
{{- define "alfi.kafkaTopics" -}}
{{- range $service := list "intake" "casework" "veille" }}
- alfi.{{ $service }}.events
- alfi.{{ $service }}.events.dlq
- alfi.{{ $service }}.commands
- alfi.{{ $service }}.commands.dlq
{{- end }}
{{- end -}}
