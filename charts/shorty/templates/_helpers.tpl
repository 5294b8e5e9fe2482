{{/*
Names, labels, the image, the security contexts and the env that reaches
PostgreSQL and Redis: every template (and the backup CronJob) takes them from here.
*/}}

{{- define "shorty.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-shorty", or the release name when it already says shorty. */}}
{{- define "shorty.fullname" -}}
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

{{/* Selector labels: name and instance only (selectors are immutable). */}}
{{- define "shorty.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shorty.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shorty.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "shorty.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shorty
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "shorty.componentLabels" -}}
{{ include "shorty.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "shorty.componentSelector" -}}
{{ include "shorty.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Shorty's image; the tag defaults to appVersion and is never "latest". */}}
{{- define "shorty.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq $tag "latest" }}{{ fail "image.tag: pin a version, not latest" }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "shorty.secretName" -}}
{{- default (include "shorty.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "shorty.serviceAccountName" -}}
{{ include "shorty.fullname" . }}
{{- end }}

{{/* Pod security context of Shorty's pods: PSS restricted. */}}
{{- define "shorty.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context of every container: PSS restricted, read-only root. */}}
{{- define "shorty.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{- define "shorty.postgresqlHost" -}}
{{- if .Values.postgresql.enabled }}{{ include "shorty.fullname" . }}-postgresql{{ else }}{{ required "externalDatabase.host is required when postgresql.enabled is false" .Values.externalDatabase.host }}{{ end }}
{{- end }}

{{/*
The env a pod needs to reach PostgreSQL: libpq's PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSWORD (pg_dump and psql read them as they are), PGSSLMODE when set,
and SHORTY_DATABASE_URL composed from them with dependent env vars $(VAR) (the
password is alphanumeric) — or, with externalDatabase.existingSecretUrlKey,
taken whole from that Secret.
*/}}
{{- define "shorty.databaseEnv" -}}
{{- $db := .Values.externalDatabase }}
{{- $secret := include "shorty.secretName" . }}
{{- $key := "postgres-password" }}
{{- $port := 5432 }}
{{- $name := .Values.postgresql.database }}
{{- $user := .Values.postgresql.user }}
{{- if not .Values.postgresql.enabled }}
{{- $secret = required "externalDatabase.existingSecret is required when postgresql.enabled is false" $db.existingSecret }}
{{- $key = $db.existingSecretPasswordKey }}
{{- $port = $db.port }}
{{- $name = $db.database }}
{{- $user = $db.user }}
{{- end }}
- name: PGHOST
  value: {{ include "shorty.postgresqlHost" . | quote }}
- name: PGPORT
  value: {{ $port | quote }}
- name: PGDATABASE
  value: {{ $name | quote }}
- name: PGUSER
  value: {{ $user | quote }}
{{- if and (not .Values.postgresql.enabled) $db.sslmode }}
- name: PGSSLMODE
  value: {{ $db.sslmode | quote }}
{{- end }}
{{- if and (not .Values.postgresql.enabled) $db.existingSecretUrlKey }}
- name: SHORTY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $db.existingSecretUrlKey }}
{{- else }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
- name: SHORTY_DATABASE_URL
  value: "postgresql://$(PGUSER):$(PGPASSWORD)@$(PGHOST):$(PGPORT)/$(PGDATABASE){{ if and (not .Values.postgresql.enabled) $db.sslmode }}?sslmode=$(PGSSLMODE){{ end }}"
{{- end }}
{{- end }}

{{/*
The env a pod needs to reach Redis: REDIS_PASSWORD and SHORTY_REDIS_URL composed
from it (the chart's Redis), or SHORTY_REDIS_URL from externalRedis (its URL, or
the whole URL from its Secret).
*/}}
{{- define "shorty.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "shorty.secretName" . }}
      key: redis-password
- name: SHORTY_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "shorty.fullname" . }}-redis:6379/0"
{{- else if .Values.externalRedis.existingSecret }}
- name: SHORTY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretUrlKey }}
{{- else }}
- name: SHORTY_REDIS_URL
  value: {{ required "externalRedis.url or externalRedis.existingSecret is required when redis.enabled is false" .Values.externalRedis.url | quote }}
{{- end }}
{{- end }}

{{/*
OpenTelemetry's variables of one component, (dict "root" $ "component" "redirect"):
otel.env, and with otel.endpoint the collector and the redirect's own sampling ratio.
*/}}
{{- define "shorty.otelEnv" -}}
{{- $otel := .root.Values.otel }}
{{- if $otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
{{- end }}
{{- range $name, $value := $otel.env }}
{{- if not (and (eq $.component "redirect") (eq $name "OTEL_TRACES_SAMPLER_ARG")) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- /* Whenever traces may be exported: the endpoint may come from existingSecret, and
  a sampler named in otel.env without its ratio would trace every redirect. */}}
{{- if and (or $otel.endpoint $otel.existingSecret $otel.env) (eq .component "redirect") }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $otel.redirectSampleRatio | quote }}
{{- end }}
{{- end }}

{{/* The public URL: publicUrl, else from the Ingress, else port-forward's. */}}
{{- define "shorty.publicUrl" -}}
{{- if .Values.publicUrl }}{{ .Values.publicUrl }}
{{- else if .Values.ingress.enabled }}{{ if .Values.ingress.tls.enabled }}https{{ else }}http{{ end }}://{{ .Values.ingress.host }}
{{- else }}http://localhost:8080
{{- end }}
{{- end }}

{{- define "shorty.apiUrl" -}}
{{- if and .Values.ingress.enabled .Values.ingress.apiHost }}{{ if .Values.ingress.tls.enabled }}https{{ else }}http{{ end }}://{{ .Values.ingress.apiHost }}
{{- else }}{{ include "shorty.publicUrl" . }}
{{- end }}
{{- end }}

{{/* A pod's topology spread: over hostnames and zones, as a preference. */}}
{{- define "shorty.topologySpread" -}}
{{- if .root.Values.topologySpread }}
topologySpreadConstraints:
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "shorty.componentSelector" $ | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The init container that migrates on first install with the chart's PostgreSQL.
--allow-newer: after a rollback the previous release starts on the newer schema
instead of crash-looping on a revision it does not know. */}}
{{- define "shorty.migrateInitContainer" -}}
{{- if .Values.postgresql.enabled }}
initContainers:
  - name: migrate
    image: {{ include "shorty.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: [shorty, migrate, --allow-newer]
    env:
      {{- include "shorty.databaseEnv" . | nindent 6 }}
    resources:
      {{- toYaml .Values.migrations.resources | nindent 6 }}
    securityContext:
      {{- include "shorty.containerSecurityContext" . | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
{{- end }}
{{- end }}
