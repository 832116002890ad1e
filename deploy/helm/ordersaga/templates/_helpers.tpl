{{/* Labels every object of the release carries. */}}
{{- define "ordersaga.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: ordersaga
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* What a Deployment selects its pods by: the app id and the release (args: dict root, appId). */}}
{{- define "ordersaga.selectorLabels" -}}
app.kubernetes.io/name: {{ .appId }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "ordersaga.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default "ordersaga" }}
{{- end }}

{{/*
The value of dapr.io/env-from-secret: "ENV=secret:key,..." for the keys the app's sidecar reads
through the envsecrets store. The Secret's keys are the variables' own names.
(args: dict root, keys)
*/}}
{{- define "ordersaga.sidecarSecretEnv" -}}
{{- $secret := .root.Values.connections.secretName -}}
{{- $pairs := list -}}
{{- range .keys -}}
{{- $pairs = append $pairs (printf "%s=%s:%s" . $secret .) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end }}
