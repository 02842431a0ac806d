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

{{/* Annotation of the webhook Secret saying when its certificate expires (RFC 3339, UTC). */}}
{{- define "hybrid-scheduler.certificateNotAfter" -}}hybrid-scheduler.io/certificate-not-after{{- end -}}

{{/* The webhook Secret as it is in the cluster, as JSON ({} under `helm template`). */}}
{{- define "hybrid-scheduler.existingWebhookSecret" -}}
{{- toJson (lookup "v1" "Secret" .Release.Namespace (include "hybrid-scheduler.webhookSecret" .)) -}}
{{- end -}}

{{/*
The webhook's TLS as JSON: base64 "crt", "key", "ca" (the CA of "crt"), "previousCa" (the
CA before the last renewal, still trusted while the replicas roll) and "notAfter". The
existing Secret's pair is kept unless it expires within certificateRenewBeforeDays or does
not say when it expires (a Secret of an older chart); then a new CA and serving
certificate are made. Computed once per render (kept in .Release) so that the Secret, the
configuration's caBundle and the Deployment's checksum agree.
*/}}
{{- define "hybrid-scheduler.webhookTLS" -}}
{{- if not (hasKey .Release "hybridSchedulerWebhookTLS") -}}
{{- $validity := int .Values.webhook.certificateValidityDays -}}
{{- $renewBefore := int .Values.webhook.certificateRenewBeforeDays -}}
{{- if ge $renewBefore $validity -}}
{{- fail (printf "webhook.certificateRenewBeforeDays: %d must be less than webhook.certificateValidityDays (%d)" $renewBefore $validity) -}}
{{- end -}}
{{- $existing := include "hybrid-scheduler.existingWebhookSecret" . | fromJson -}}
{{- $data := $existing.data | default dict -}}
{{- $annotations := ($existing.metadata | default dict).annotations | default dict -}}
{{- $notAfter := index $annotations (include "hybrid-scheduler.certificateNotAfter" .) | default "" -}}
{{- $renewAt := (now | dateModify (printf "+%dh" (mul $renewBefore 24))).Unix -}}
{{- $expires := (toDate "2006-01-02T15:04:05Z07:00" $notAfter).Unix -}}
{{- $tls := dict -}}
{{- if and (hasKey $data "tls.crt") (hasKey $data "tls.key") (hasKey $data "ca.crt") (gt $expires $renewAt) -}}
{{- $tls = dict "crt" (index $data "tls.crt") "key" (index $data "tls.key") "ca" (index $data "ca.crt") "previousCa" (index $data "ca-previous.crt" | default "") "notAfter" $notAfter -}}
{{- else -}}
{{- $fullname := include "hybrid-scheduler.fullname" . -}}
{{- $service := printf "%s.%s.svc" $fullname .Release.Namespace -}}
{{- $caPair := genCA (printf "%s webhook CA" $fullname) $validity -}}
{{- $serving := genSignedCert $service nil (list $service (printf "%s.cluster.local" $service)) $validity $caPair -}}
{{- $until := now | dateModify (printf "+%dh" (mul $validity 24)) -}}
{{- $tls = dict "crt" ($serving.Cert | b64enc) "key" ($serving.Key | b64enc) "ca" ($caPair.Cert | b64enc) "previousCa" (index $data "ca.crt" | default "") "notAfter" (dateInZone "2006-01-02T15:04:05Z" $until "UTC") -}}
{{- end -}}
{{- $_ := set .Release "hybridSchedulerWebhookTLS" $tls -}}
{{- end -}}
{{- toJson (get .Release "hybridSchedulerWebhookTLS") -}}
{{- end -}}
