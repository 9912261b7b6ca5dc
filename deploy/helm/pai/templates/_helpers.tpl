{{/* The chart's name. */}}
{{- define "pai.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release's, unless it lacks the chart's name. */}}
{{- define "pai.fullname" -}}
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

{{- define "pai.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pai.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pai.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pai.labels" -}}
helm.sh/chart: {{ include "pai.chart" . }}
{{ include "pai.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pai.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pai.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pai.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "pai.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{- define "pai.masterKeySecret" -}}
{{- default (printf "%s-master-key" (include "pai.fullname" .)) .Values.masterKey.existingSecret }}
{{- end }}

{{/* The settings the chart itself sets; gateway.config may not repeat them. */}}
{{- define "pai.reservedSettings" -}}
listen admin-listen data-dir prices trusted-proxy store ledger ledger-prefix admin-token admin-token-file shutdown-grace-seconds config
{{- end }}

{{/* Refuse values that cannot work, with the fix. */}}
{{- define "pai.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.store.existingSecret) }}
{{- fail (printf "replicaCount is %d, but several replicas need a shared PostgreSQL store: set store.existingSecret (a Secret holding a postgres:// URL under store.secretKey), or set replicaCount: 1 for the embedded SQLite store" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.persistence.enabled .Values.store.existingSecret }}
{{- fail "persistence.enabled is for the embedded SQLite store; with store.existingSecret the data directory holds only master.key: set persistence.enabled: false" }}
{{- end }}
{{- $reserved := splitList " " (include "pai.reservedSettings" .) }}
{{- range $key, $_ := .Values.gateway.config }}
{{- if has $key $reserved }}
{{- fail (printf "gateway.config.%s is set by the chart; use its own value (see values.yaml: gateway.modelPrices, gateway.externalProviderGateway.trustedProxies, store, ledger, adminToken, service, shutdownGraceSeconds)" $key) }}
{{- end }}
{{- end }}
{{- end }}
