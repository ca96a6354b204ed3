{{/* Names: one stowage per cluster is the norm, so the release name leads. */}}
{{- define "stowage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stowage.operatorName" -}}
{{- printf "%s-operator" (include "stowage.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stowage.helperName" -}}
{{- printf "%s-helper" (include "stowage.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stowage.helperNamespace" -}}
{{- .Values.helperNamespace.name | default .Release.Namespace -}}
{{- end -}}

{{- define "stowage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "stowage.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "stowage.image" -}}
{{- $image := index .root.Values.image .component -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* A container of the operator's pod: Pod Security `restricted`. */}}
{{- define "stowage.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}
