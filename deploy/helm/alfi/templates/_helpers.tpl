{{/* Names and labels shared by every template. */}}

{{- define "alfi.name" -}}
{{- printf "%s-%s" .root.Release.Name .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alfi.commonLabels" -}}
app.kubernetes.io/name: alfi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: alfi
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The labels that select one service's pods ({root, service}). */}}
{{- define "alfi.selectorLabels" -}}
app.kubernetes.io/name: alfi
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "alfi.labels" -}}
{{ include "alfi.commonLabels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{/* Every service pod: what the engines' NetworkPolicies admit (Kafka, PostgreSQL). */}}
{{- define "alfi.clientLabels" -}}
alfi.io/kafka-client: "true"
alfi.io/database-client: "true"
{{- end -}}

{{- define "alfi.kafkaBootstrap" -}}
{{- printf "%s-kafka-bootstrap:%d" .Values.kafka.clusterName (ternary 9093 9092 .Values.kafka.tls | int) -}}
{{- end -}}

{{- define "alfi.kafkaUser" -}}
{{- printf "%s-%s" .root.Values.kafka.clusterName .service -}}
{{- end -}}

{{/* The Secret (and key) holding DATABASE_URL: CloudNativePG's <cluster>-app (key uri,
     user and password included) or the one named for an external database. */}}
{{- define "alfi.databaseSecret" -}}
{{- if eq .Values.database.mode "cnpg" -}}
name: {{ printf "%s-app" .Values.database.cnpg.name }}
key: uri
{{- else if eq .Values.database.mode "external" -}}
name: {{ required "database.external.secretName" .Values.database.external.secretName }}
key: {{ .Values.database.external.secretKey }}
{{- else -}}
{{- fail "database.mode is cnpg or external" -}}
{{- end -}}
{{- end -}}
