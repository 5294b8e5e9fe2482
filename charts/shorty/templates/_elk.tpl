{{/*
The logging stack's names and shared pieces (templates/elk-*.yaml). Every ELK config
is a file of elk/ (the chart reads it through the link charts/shorty/elk).
*/}}

{{- define "shorty.elkSecretName" -}}
{{- default (printf "%s-elk" (include "shorty.fullname" .)) .Values.elk.existingSecret }}
{{- end }}

{{/* The labels of a pod: (dict "root" $ "component" "api"). The pods of Shorty's own
processes, whose lines are ECS JSON, carry the label Filebeat's input selects
(elk/filebeat/filebeat.yml) — with the chart's logging stack or a Filebeat of the
cluster's own; PostgreSQL's, Redis's and ELK's do not. */}}
{{- define "shorty.podLabels" -}}
{{ include "shorty.componentLabels" . }}
{{- if has .component (list "api" "redirect" "worker" "operator" "migrations" "backup") }}
shorty.dev/logs: ecs
{{- end }}
{{- end }}

{{- define "shorty.elasticsearchUrl" -}}
https://{{ include "shorty.fullname" . }}-elasticsearch:9200
{{- end }}

{{/* Kibana's server.basePath: the Ingress path when Kibana is on a path of ingress.host. */}}
{{- define "shorty.kibanaBasePath" -}}
{{- $ing := .Values.elk.kibana.ingress }}
{{- if and $ing.enabled (not $ing.host) }}{{ $ing.path }}{{ end }}
{{- end }}

{{- define "shorty.kibanaUrl" -}}
http://{{ include "shorty.fullname" . }}-kibana:5601{{ include "shorty.kibanaBasePath" . }}
{{- end }}

{{/* An Elastic image: (dict "image" .Values.elk.x.image). */}}
{{- define "shorty.elkImage" -}}
{{- printf "%s:%s" .image.repository .image.tag }}
{{- end }}

{{/* The pods of Elasticsearch, Logstash and Kibana run as the images' own user
(elasticsearch, logstash, kibana: 1000), PSS restricted. */}}
{{- define "shorty.elkPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
`shorty elk setup` in Shorty's image: (dict "root" $ "part" "elasticsearch"). The
ILM policy, the templates, the writer role, the users shorty_logstash and
kibana_system (part elasticsearch), then Kibana's saved objects (part kibana);
idempotent, waiting a bounded time for the servers. The files are the ConfigMap
"<fullname>-elk-setup" (elk/elasticsearch/*.json, elk/kibana/*.ndjson), mounted
with the CA by "shorty.elkSetupVolumes".
*/}}
{{- define "shorty.elkSetupContainer" -}}
{{- $root := .root }}
{{- $secret := include "shorty.elkSecretName" $root -}}
name: elk-setup
image: {{ include "shorty.image" $root }}
imagePullPolicy: {{ $root.Values.image.pullPolicy }}
command: [shorty, elk, setup, --part, {{ .part }}, --config-dir, /etc/shorty/elk]
env:
  - name: SHORTY_ELK_ELASTICSEARCH_URL
    value: {{ include "shorty.elasticsearchUrl" $root | quote }}
  {{- if ne .part "elasticsearch" }}
  - name: SHORTY_ELK_KIBANA_URL
    value: {{ include "shorty.kibanaUrl" $root | quote }}
  {{- end }}
  - name: SHORTY_ELK_CA_FILE
    value: /etc/shorty/elk-certs/ca.crt
  - name: SHORTY_ELK_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: elastic-password}
  - name: SHORTY_ELK_LOGSTASH_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: logstash-password}
  - name: SHORTY_ELK_KIBANA_SYSTEM_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $secret }}, key: kibana-system-password}
  - name: SHORTY_ELK_RETENTION
    value: {{ $root.Values.elk.retention | quote }}
  - name: SHORTY_ELK_WARM_AFTER
    value: {{ $root.Values.elk.warmAfter | quote }}
resources:
  {{- toYaml $root.Values.elk.setup.resources | nindent 2 }}
securityContext:
  {{- include "shorty.containerSecurityContext" $root | nindent 2 }}
volumeMounts:
  - {name: elk-setup, mountPath: /etc/shorty/elk, readOnly: true}
  - {name: elk-setup-certs, mountPath: /etc/shorty/elk-certs, readOnly: true}
  - {name: elk-setup-tmp, mountPath: /tmp}
{{- end }}

{{- define "shorty.elkSetupVolumes" -}}
- name: elk-setup
  configMap:
    name: {{ include "shorty.fullname" . }}-elk-setup
- name: elk-setup-certs
  secret:
    secretName: {{ include "shorty.elkSecretName" . }}
    items:
      - {key: ca.crt, path: ca.crt}
- name: elk-setup-tmp
  emptyDir: {sizeLimit: 64Mi}
{{- end }}

{{/* The CA of the stack's TLS, as a volume of the Elastic containers. */}}
{{- define "shorty.elkCaVolume" -}}
- name: certs
  secret:
    secretName: {{ include "shorty.elkSecretName" . }}
    items:
      - {key: ca.crt, path: ca.crt}
{{- end }}

{{/* An Elasticsearch time value (the schema allows a whole number and nanos, micros,
ms, s, m, h or d) in nanoseconds, to compare two of them. */}}
{{- define "shorty.timeValueNanos" -}}
{{- $unit := regexFind "[a-z]+$" . }}
{{- $scale := dict "nanos" 1 "micros" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000 "d" 86400000000000 }}
{{- mul (int64 (trimSuffix $unit .)) (index $scale $unit) }}
{{- end }}
