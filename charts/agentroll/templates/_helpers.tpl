{{- define "agentroll.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentroll.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "agentroll.webhookName" -}}
{{- printf "%s-webhook" (include "agentroll.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentroll.tlsSecret" -}}
{{- printf "%s-tls" (include "agentroll.webhookName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentroll.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentroll.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "agentroll.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "agentroll.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agentroll.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Label matchers of one side (canary or stable) of the comparison; the argument is the hash. */}}
{{- define "agentroll.sel" -}}
namespace="{{`{{args.namespace}}`}}",rollouts_pod_template_hash="{{ . }}"
{{- end }}

{{/* Conditions shared by every gate metric: NaN satisfies neither, so it is Inconclusive. */}}
{{- define "agentroll.gateMetric" -}}
successCondition: "!isNaN(result[0]) && result[0] <= {{ .zc }}"
failureCondition: "!isNaN(result[0]) && result[0] > {{ .zc }}"
failureLimit: 0
inconclusiveLimit: 0
{{- end }}

{{/*
One-sided Agresti-Caffo z statistic of "canary's bad-event rate exceeds stable's by more than the
margin"; NaN when either side has fewer than `min` events. `bad` selects the bad events among
`metric`; absent bad series count as 0, an absent total makes the whole query NaN.
*/}}
{{- define "agentroll.rateZ" -}}
{{- $w := "{{args.window}}" -}}
{{- $c := include "agentroll.sel" "{{args.canary-hash}}" -}}
{{- $s := include "agentroll.sel" "{{args.stable-hash}}" -}}
{{- $xc := printf "((sum(increase(%s{%s,%s}[%s])) or on() vector(0)) + 1)" .metric $c .bad $w -}}
{{- $nc := printf "(sum(increase(%s{%s}[%s])) + 2)" .metric $c $w -}}
{{- $xs := printf "((sum(increase(%s{%s,%s}[%s])) or on() vector(0)) + 1)" .metric $s .bad $w -}}
{{- $ns := printf "(sum(increase(%s{%s}[%s])) + 2)" .metric $s $w -}}
{{- $pc := printf "(%s / %s)" $xc $nc -}}
{{- $ps := printf "(%s / %s)" $xs $ns -}}
(
  (
    ({{ $pc }} - {{ $ps }} - {{ .margin }})
    / sqrt(
        {{ $pc }} * (1 - {{ $pc }}) / {{ $nc }}
      + {{ $ps }} * (1 - {{ $ps }}) / {{ $ns }}
    )
  )
  and on() (sum(increase({{ .metric }}{ {{- $c -}} }[{{ $w }}])) >= {{ .min }})
  and on() (sum(increase({{ .metric }}{ {{- $s -}} }[{{ $w }}])) >= {{ .min }})
)
or on() vector(NaN)
{{- end }}
