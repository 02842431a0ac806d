{{/* Name of every object of the release. */}}
{{- define "hybrid-scheduler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "hybrid-scheduler.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "hybrid-scheduler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "hybrid-scheduler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: scheduler
{{- end -}}

{{/* Where the settings file and the webhook certificate are mounted. */}}
{{- define "hybrid-scheduler.configDir" -}}/etc/hybrid-scheduler{{- end -}}
{{- define "hybrid-scheduler.certDir" -}}/var/run/hybrid-scheduler/webhook-tls{{- end -}}
{{- define "hybrid-scheduler.webhookSecret" -}}{{ include "hybrid-scheduler.fullname" . }}-webhook-tls{{- end -}}
