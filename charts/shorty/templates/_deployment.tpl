{{/*
One of Shorty's services as a Deployment: (dict "root" $ "component" "api").
api and redirect serve HTTP (readiness /readyz there) and answer /livez on their
metrics port, off the event loop; the worker answers /livez on its metrics port.
Rolling updates add a pod and wait for its /readyz before one goes (maxUnavailable 0).
After SIGTERM the HTTP services drain for SHORTY_DRAIN_DELAY (5 s) and every
service stops within 25 s: terminationGracePeriodSeconds 30, no preStop.
*/}}
{{- define "shorty.serviceDeployment" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := index $root.Values $component }}
{{- $ports := dict "api" 8000 "redirect" 8080 }}
{{- $metrics := dict "api" 9100 "redirect" 9101 "worker" 9102 }}
{{- $http := hasKey $ports $component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "shorty.fullname" $root }}-{{ $component }}
  labels:
    {{- include "shorty.componentLabels" . | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "shorty.componentSelector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shorty.podLabels" . | nindent 8 }}
      annotations:
        # Settings and secrets are read once at start: roll the pods when they change.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "shorty.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        {{- include "shorty.podSecurityContext" $root | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "shorty.topologySpread" . | nindent 6 }}
      {{- include "shorty.migrateInitContainer" $root | nindent 6 }}
      containers:
        - name: {{ $component }}
          image: {{ include "shorty.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [shorty]
          args: [serve, {{ $component }}]
          envFrom:
            - configMapRef:
                name: {{ include "shorty.fullname" $root }}
            {{- with $root.Values.otel.existingSecret }}
            - secretRef: {name: {{ . }}}  # OTEL_* variables (otel.existingSecret)
            {{- end }}
          env:
            {{- include "shorty.databaseEnv" $root | nindent 12 }}
            {{- include "shorty.redisEnv" $root | nindent 12 }}
            - name: SHORTY_JWT_SECRET
              valueFrom:
                secretKeyRef: {name: {{ include "shorty.secretName" $root }}, key: jwt-secret}
            - name: SHORTY_SECRET_KEY
              valueFrom:
                secretKeyRef: {name: {{ include "shorty.secretName" $root }}, key: secret-key}
            {{- include "shorty.otelEnv" . | nindent 12 }}
            {{- if eq $component "api" }}
            {{- if $root.Values.initialAdmin.enabled }}
            - name: SHORTY_INITIAL_API_KEY
              valueFrom:
                secretKeyRef: {name: {{ include "shorty.secretName" $root }}, key: initial-api-key}
            {{- end }}
            {{- if $root.Values.operator.enabled }}
            - name: SHORTY_OPERATOR_API_KEY
              valueFrom:
                secretKeyRef: {name: {{ include "shorty.secretName" $root }}, key: operator-api-key}
            {{- end }}
            {{- end }}
          ports:
            {{- if $http }}
            - name: http
              containerPort: {{ index $ports $component }}
            {{- end }}
            - name: metrics
              containerPort: {{ index $metrics $component }}
          startupProbe:
            httpGet: {path: /livez, port: metrics}
            periodSeconds: 2
            timeoutSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet: {path: /livez, port: metrics}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          {{- if $http }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- include "shorty.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: 64Mi}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
