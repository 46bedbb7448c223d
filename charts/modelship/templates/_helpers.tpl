{{/*
Names and labels shared by every template. The defaults render the same names as manifests/
(`helm install modelship` gives "modelship-operator"), so a kustomize install and a chart install
are the same objects (tests/integration/chart/test_chart_render.py compares them).
*/}}

{{- define "modelship.fullname" -}}
{{- default (printf "%s-operator" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The job label Prometheus gives the operator's PodMonitor: <namespace>/<PodMonitor name>. */}}
{{- define "modelship.job" -}}
{{- printf "%s/%s" .Release.Namespace (include "modelship.fullname" .) -}}
{{- end -}}

{{/* The job label the committed alerts and dashboards were written for (manifests/). */}}
{{- define "modelship.manifestsJob" -}}
modelship-system/modelship-operator
{{- end -}}

{{/* Selector labels: the Deployment's selector and what the PodMonitor and Service select. */}}
{{- define "modelship.selectorLabels" -}}
app.kubernetes.io/name: modelship-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of every object; the RBAC objects of manifests/rbac.yaml have no component. */}}
{{- define "modelship.rbacLabels" -}}
{{ include "modelship.selectorLabels" . }}
app.kubernetes.io/part-of: modelship
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "modelship.labels" -}}
{{ include "modelship.rbacLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The operator's rules: the ClusterRole of files/rbac.yaml (a copy of manifests/rbac.yaml that
hack/chart.py keeps in step), so the chart grants exactly what tests/unit/operator/test_rbac.py
checks against the code.
*/}}
{{- define "modelship.rules" -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.Files.Get "files/rbac.yaml") -1 }}
{{- $object := fromYaml $doc }}
{{- if eq (get $object "kind") "ClusterRole" }}
{{- toYaml (get $object "rules") }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "modelship.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
