{{/* Chart name, at most 63 characters. */}}
{{- define "rust-api-axum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, suffixed with the chart name unless it already holds it. */}}
{{- define "rust-api-axum.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rust-api-axum.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rust-api-axum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rust-api-axum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of the server's pods; the migration Job's pods carry component=migration and so never match. */}}
{{- define "rust-api-axum.serverSelectorLabels" -}}
{{ include "rust-api-axum.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "rust-api-axum.labels" -}}
helm.sh/chart: {{ include "rust-api-axum.chart" . }}
{{ include "rust-api-axum.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rust-api-axum
{{- end }}

{{- define "rust-api-axum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rust-api-axum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
ServiceAccount of the migration Job. A pre-install hook runs before the release's own ServiceAccount exists, so
when the chart creates that one the Job uses the namespace's "default" account (its token is not mounted either)
unless migrations.serviceAccountName names another that already exists.
*/}}
{{- define "rust-api-axum.migrationServiceAccountName" -}}
{{- if .Values.migrations.serviceAccountName }}
{{- .Values.migrations.serviceAccountName }}
{{- else if .Values.serviceAccount.create }}
{{- "default" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rust-api-axum.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the engine keeps its data in the pod (sqlite). */}}
{{- define "rust-api-axum.isSqlite" -}}
{{- if eq .Values.database.engine "sqlite" }}true{{ end }}
{{- end }}

{{/* "true" when the chart's own Secret carries the database URL. */}}
{{- define "rust-api-axum.chartDbSecret" -}}
{{- if and (not .Values.database.existingSecret) .Values.database.url }}true{{ end }}
{{- end }}

{{/* "true" when the server gets a database URL from some Secret. */}}
{{- define "rust-api-axum.hasDbUrl" -}}
{{- if or .Values.database.existingSecret .Values.database.url }}true{{ end }}
{{- end }}

{{/* "true" when OIDC is configured (inline or existing Secret). */}}
{{- define "rust-api-axum.oidcEnabled" -}}
{{- if or .Values.oidc.existingSecret .Values.oidc.clientSecrets }}true{{ end }}
{{- end }}

{{/* "true" when the chart's own Secret carries client_secrets.json. */}}
{{- define "rust-api-axum.chartOidcSecret" -}}
{{- if and (not .Values.oidc.existingSecret) .Values.oidc.clientSecrets }}true{{ end }}
{{- end }}

{{/* "true" when the pre-install/pre-upgrade migration Job is rendered. */}}
{{- define "rust-api-axum.migrationJob" -}}
{{- if and .Values.migrations.enabled (not (include "rust-api-axum.isSqlite" .)) }}true{{ end }}
{{- end }}

{{- define "rust-api-axum.terminationGracePeriodSeconds" -}}
{{- $need := add (int .Values.shutdown.drainSeconds) (int .Values.shutdown.graceSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $need 10 }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Checks of combinations the schema cannot express; each fails rendering with a message that says what to change.
Included once from every template that depends on it, so any render (and helm lint) stops on them.
*/}}
{{- define "rust-api-axum.validate" -}}
{{- $v := .Values }}
{{- $engine := $v.database.engine }}
{{- if eq $engine "sqlite" }}
{{- if gt (int $v.replicaCount) 1 }}
{{- fail (printf "database.engine=sqlite keeps the database in each pod's own volume: use one replica (replicaCount: 1, autoscaling off) or PostgreSQL (replicaCount is %d)" (int $v.replicaCount)) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.maxReplicas) 1) }}
{{- fail (printf "database.engine=sqlite keeps the database in each pod's own volume: use one replica (replicaCount: 1, autoscaling off) or PostgreSQL (autoscaling.maxReplicas is %d)" (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- else }}
{{- if not (include "rust-api-axum.hasDbUrl" .) }}
{{- fail (printf "database.engine=%s needs a database URL: set database.url (e.g. %s://user:password@host:port/db) or database.existingSecret (+ database.existingSecretKey) naming a Secret that holds it" $engine $engine) }}
{{- end }}
{{- end }}
{{- if and $v.database.url (not $v.database.existingSecret) }}
{{- $scheme := regexReplaceAll "^([A-Za-z0-9+.-]*):.*$" $v.database.url "${1}" | lower }}
{{- $ok := dict "postgres" (list "postgres" "postgresql") "mysql" (list "mysql" "mariadb") "sqlite" (list "sqlite") }}
{{- if and (eq $engine "sqlite") (not (has $scheme (get $ok $engine))) }}
{{- fail (printf "database.engine=sqlite but database.url is a %s: URL (the chart's default is a PostgreSQL one): set database.url: \"\" to keep the database at %s/rust-api-axum.sqlite, or give a sqlite:///path?mode=rwc URL" $scheme .Values.instance.path) }}
{{- end }}
{{- if not (has $scheme (get $ok $engine)) }}
{{- fail (printf "database.url starts with %q but database.engine is %s: give a URL starting with %s, or set database.engine to match" (printf "%s:" $scheme) $engine (join ":// or " (get $ok $engine) | printf "%s://")) }}
{{- end }}
{{- end }}
{{- $reserved := list "host" "port" "instance_path" "db_url" "auto_migrate" "oidc_client_secrets" "shutdown_drain_secs" "shutdown_grace_secs" "metrics_enabled" "metrics_port" }}
{{- range $key, $_ := $v.config }}
{{- if has (lower $key) $reserved }}
{{- fail (printf "config.%s is set by the chart itself: use the chart's value for it instead (see the chart's README: containerPort, instance.path, database.*, oidc.*, shutdown.*, metrics.*)" $key) }}
{{- end }}
{{- end }}
{{- $need := add (int $v.shutdown.drainSeconds) (int $v.shutdown.graceSeconds) 4 }}
{{- if lt (int (include "rust-api-axum.terminationGracePeriodSeconds" .)) (int $need) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least shutdown.drainSeconds + shutdown.graceSeconds + 4 = %d, or Kubernetes kills pods before they drain" $v.terminationGracePeriodSeconds $need) }}
{{- end }}
{{- if and $v.oidc.clientSecrets (not $v.oidc.existingSecret) }}
{{- $parsed := fromJson $v.oidc.clientSecrets }}
{{- if or (hasKey $parsed "Error") (not $parsed) }}
{{- fail "oidc.clientSecrets must be the client_secrets.json document as a string of JSON (an object with a \"web\" entry), e.g. oidc.clientSecrets: '{\"web\": {...}}'" }}
{{- end }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: true (with metrics off /metrics is a 404)" }}
{{- end }}
{{- if and $v.metrics.port (eq (int $v.metrics.port) (int $v.containerPort)) }}
{{- fail "metrics.port must differ from containerPort (null keeps /metrics on the http port)" }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* APP_CONFIG_* entries from a map: scalars as text, lists as JSON, nested maps as <KEY>__<SUBKEY>. */}}
{{- define "rust-api-axum.configEntries" -}}
{{- $prefix := .prefix }}
{{- range $key, $value := .map }}
{{- $name := printf "%s%s" $prefix (upper $key | replace "-" "_" | replace "." "_") }}
{{- if kindIs "map" $value }}
{{- include "rust-api-axum.configEntries" (dict "prefix" (printf "%s__" $name) "map" $value) }}
{{- else if kindIs "slice" $value }}
{{ $name }}: {{ toJson $value | quote }}
{{- else if kindIs "invalid" $value }}
{{- else }}
{{ $name }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap's data: the chart's managed keys, then the free-form config. */}}
{{- define "rust-api-axum.configData" -}}
{{- $v := .Values }}
APP_CONFIG_HOST: "0.0.0.0"
APP_CONFIG_PORT: {{ $v.containerPort | toString | quote }}
APP_CONFIG_INSTANCE_PATH: {{ $v.instance.path | quote }}
{{- /* Production mode (never migrate, refuse a schema that is behind) for shared databases; a per-pod SQLite
       database has no hook Job to migrate it, so the server brings it up to date itself. */}}
APP_CONFIG_AUTO_MIGRATE: {{ ternary "true" "false" (eq $v.database.engine "sqlite") | quote }}
APP_CONFIG_SHUTDOWN_DRAIN_SECS: {{ $v.shutdown.drainSeconds | toString | quote }}
APP_CONFIG_SHUTDOWN_GRACE_SECS: {{ $v.shutdown.graceSeconds | toString | quote }}
APP_CONFIG_METRICS_ENABLED: {{ $v.metrics.enabled | toString | quote }}
{{- if $v.metrics.port }}
APP_CONFIG_METRICS_PORT: {{ $v.metrics.port | toString | quote }}
{{- end }}
{{- include "rust-api-axum.configEntries" (dict "prefix" "APP_CONFIG_" "map" $v.config) }}
{{- end }}

{{/* Env of the server and the migration Job: the database URL from its Secret, then extraEnv. */}}
{{- define "rust-api-axum.dbEnv" -}}
{{- $secret := .secretName }}
{{- $key := .secretKey }}
{{- if $secret }}
- name: APP_CONFIG_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- end }}

{{- define "rust-api-axum.dbSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.url }}
{{- include "rust-api-axum.fullname" . }}
{{- end }}
{{- end }}

{{- define "rust-api-axum.dbSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else }}db-url{{ end }}
{{- end }}
