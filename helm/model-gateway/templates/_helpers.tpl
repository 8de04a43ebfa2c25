{{/* Names, labels and the gateway container, shared by both modes. */}}

{{- define "model-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-gateway.fullname" -}}
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

{{- define "model-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "model-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "model-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "model-gateway.port" -}}
{{- (.Values.config.server | default dict).port | default 8080 | int }}
{{- end }}

{{- define "model-gateway.drainSeconds" -}}
{{- $server := .Values.config.server | default dict }}
{{- if hasKey $server "drain_seconds" }}{{ $server.drain_seconds | ceil | int }}{{ else }}30{{ end }}
{{- end }}

{{/*
Who can reach the gateway follows from the mode: a sidecar listens on loopback only
(its own pod), a central gateway must not (its Service and probes could not reach it).
*/}}
{{- define "model-gateway.checkHost" -}}
{{- $host := (.Values.config.server | default dict).host | default "0.0.0.0" }}
{{- $loopback := has $host (list "127.0.0.1" "localhost" "::1") }}
{{- if and (eq .Values.mode "sidecar") (not $loopback) }}
{{- fail "sidecar mode: config.server.host must be 127.0.0.1 (the gateway is reachable from its own pod only)" }}
{{- else if and (eq .Values.mode "central") $loopback }}
{{- fail "central mode: config.server.host is a loopback address, so the Service and the probes cannot reach the gateway; use 0.0.0.0 (or mode: sidecar)" }}
{{- end }}
{{- end }}

{{/*
Longer than the preStop sleep plus the gateway's drain, so that in-flight requests
(long streams included) finish before the kubelet sends SIGKILL.
*/}}
{{- define "model-gateway.terminationGracePeriod" -}}
{{- $needed := add .Values.preStopSleepSeconds (include "model-gateway.drainSeconds" . | int) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $needed 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStopSleepSeconds + config.server.drain_seconds (%d), or in-flight requests are killed" (int .Values.terminationGracePeriodSeconds) (int $needed)) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Pod labels: selector labels, the workload-identity opt-in, user labels. */}}
{{- define "model-gateway.podLabels" -}}
{{ include "model-gateway.selectorLabels" . }}
{{- if .Values.workloadIdentity.enabled }}
azure.workload.identity/use: "true"
{{- end }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Rolls the pods when the config (or the chart version) changes. */}}
{{- define "model-gateway.podAnnotations" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The gateway container, without `restartPolicy` (the sidecar adds it). */}}
{{- define "model-gateway.container" -}}
name: gateway
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/model-gateway/config.yaml", "--workers", "{{ .Values.workers }}"]
# The data volume: where the default SQLite database (a relative path) and the
# ledger's spool land, the root filesystem being read-only.
workingDir: /var/lib/model-gateway
ports:
  - name: http
    containerPort: {{ include "model-gateway.port" . }}
    protocol: TCP
  {{- if .Values.admin.port }}
  - name: admin
    containerPort: {{ .Values.admin.port }}
    protocol: TCP
  {{- end }}
{{- include "model-gateway.env" (dict "root" . "migrate" (eq .Values.database.migrate "hook")) }}
startupProbe:
  httpGet: {path: /readyz, port: http}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- if .Values.preStopSleepSeconds }}
lifecycle:
  preStop:
    sleep: {seconds: {{ .Values.preStopSleepSeconds }}}
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
volumeMounts:
  - {name: config, mountPath: /etc/model-gateway, readOnly: true}
  - {name: tmp, mountPath: /tmp}
  - {name: data, mountPath: /var/lib/model-gateway}
  {{- range $i, $m := .Values.secretMounts }}
  - {name: {{ printf "secret-%d" $i }}, mountPath: {{ $m.mountPath }}, readOnly: true}
  {{- end }}
{{- end }}

{{- define "model-gateway.volumes" -}}
- name: config
  configMap: {name: {{ include "model-gateway.fullname" . }}}
- name: tmp
  emptyDir: {medium: Memory, sizeLimit: 16Mi}
# Survives restarts of the container (the ledger spool a killed process left is
# sent on by the next one), not the pod.
- name: data
  emptyDir: {sizeLimit: 1Gi}
{{- range $i, $m := .Values.secretMounts }}
- name: {{ printf "secret-%d" $i }}
  secret: {secretName: {{ $m.secretName }}, defaultMode: 0440}
{{- end }}
{{- end }}

{{/* The pod-level fields both modes share. */}}
{{- define "model-gateway.podCommon" -}}
serviceAccountName: {{ include "model-gateway.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
terminationGracePeriodSeconds: {{ include "model-gateway.terminationGracePeriod" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Rate limits with possibly more than one process and no Redis would give each
replica (or worker) its own buckets, multiplying every limit.
*/}}
{{- define "model-gateway.checkSharedLimits" -}}
{{- $limits := false }}
{{- range .Values.config.deployments }}{{ if .limits }}{{ $limits = true }}{{ end }}{{ end }}
{{- range .Values.config.consumers }}{{ if or .limits .limits_by_deployment }}{{ $limits = true }}{{ end }}{{ end }}
{{- $redis := or .Values.redis.existingSecret (and .Values.config.redis .Values.config.redis.url) }}
{{- $many := or (gt (int .Values.workers) 1) (and (eq .Values.mode "central") (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1))) }}
{{- if and $limits $many (not $redis) }}
{{- fail "config has rate limits and more than one gateway process may run (replicas, autoscaling or workers): set config.redis.url or redis.existingSecret so that the limits are shared" }}
{{- end }}
{{- end }}

{{/*
The gateway's environment: Secret-backed variables (upstream keys, the Redis URL, the
database URL and password) and the user's own. `migrate`: the pods of a chart that
migrates in a hook Job refuse a schema they do not have rather than migrate it.
*/}}
{{- define "model-gateway.env" -}}
{{- $v := .root.Values }}
{{- if or $v.secretEnv $v.redis.existingSecret $v.env $v.database.existingSecret $v.database.passwordSecret.name .migrate }}
env:
  {{- range $v.secretEnv }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef: {name: {{ .secretName }}, key: {{ .key }}}
  {{- end }}
  {{- if $v.redis.existingSecret }}
  - name: MODEL_GATEWAY_REDIS__URL
    valueFrom:
      secretKeyRef: {name: {{ $v.redis.existingSecret }}, key: {{ $v.redis.key }}}
  {{- end }}
  {{- if $v.database.existingSecret }}
  - name: MODEL_GATEWAY_DATABASE__URL
    valueFrom:
      secretKeyRef: {name: {{ $v.database.existingSecret }}, key: {{ $v.database.key }}}
  {{- end }}
  {{- if $v.database.passwordSecret.name }}
  - name: MG_DATABASE_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ $v.database.passwordSecret.name }}, key: {{ $v.database.passwordSecret.key }}}
  - name: MODEL_GATEWAY_DATABASE__PASSWORD_ENV
    value: MG_DATABASE_PASSWORD
  {{- end }}
  {{- if .migrate }}
  - name: MODEL_GATEWAY_DATABASE__MIGRATE
    value: manual
  {{- end }}
  {{- with $v.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
The admin API with more than one replica and no PostgreSQL: each pod would keep its
own consumers, keys and ledger in its own SQLite file.
*/}}
{{- define "model-gateway.checkSharedDatabase" -}}
{{- $admin := .Values.config.admin | default dict }}
{{- $enabled := or $admin.api_keys $admin.entra }}
{{- $db := .Values.config.database | default dict }}
{{- $postgres := or .Values.database.existingSecret (hasPrefix "postgres" ($db.url | default "")) }}
{{- $many := or (gt (int .Values.workers) 1) (and (eq .Values.mode "central") (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1))) }}
{{- if and $enabled $many (not $postgres) }}
{{- fail "config.admin enables the admin API and more than one gateway process may run: set database.existingSecret (or config.database.url) to a PostgreSQL database that all of them share" }}
{{- end }}
{{- if and (eq .Values.database.migrate "hook") (not $postgres) }}
{{- fail "database.migrate: hook migrates a shared PostgreSQL database: set database.existingSecret (or config.database.url); SQLite on the pods' own volumes is migrated at start-up" }}
{{- end }}
{{- end }}

{{/* The config file: the user's `config`, the ledger spooling on the data volume and
the admin port unless the config says otherwise. */}}
{{- define "model-gateway.config" -}}
{{- $defaults := dict "ledger" (dict "spool_dir" "/var/lib/model-gateway/spool") }}
{{- if .Values.admin.port }}
{{- $_ := set $defaults "admin" (dict "port" .Values.admin.port) }}
{{- end }}
{{- toYaml (mergeOverwrite $defaults (deepCopy .Values.config)) }}
{{- end }}
