{{/* Chart name, shortened to the 63 characters of a DNS label. */}}
{{- define "rollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already holds it. */}}
{{- define "rollgate.fullname" -}}
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

{{- define "rollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollgate.labels" -}}
helm.sh/chart: {{ include "rollgate.chart" . }}
{{ include "rollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: rollgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rollgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Watched namespaces, de-duplicated and sorted. Empty means all namespaces. */}}
{{- define "rollgate.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
The rules the operator needs wherever it watches FeatureFlags: ClusterRole rules with an
empty namespace list, Role rules in every watched namespace otherwise.
*/}}
{{- define "rollgate.watchRules" -}}
- apiGroups: ["rollgate.dev"]
  resources: ["featureflags"]
  # patch: only to add and remove the rollgate.dev/unpublish finalizer, which lets a
  # deleted flag leave the published document first.
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rollgate.dev"]
  resources: ["featureflags/status"]
  verbs: ["get", "patch", "update"]
# Segments: read to publish them with the flags that name them; their status says whether
# they are valid.
- apiGroups: ["rollgate.dev"]
  resources: ["segments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rollgate.dev"]
  resources: ["segments/status"]
  verbs: ["get", "patch"]
# ConfigMaps by name only: the operator lists and watches them with a metadata.name field
# selector, so it cannot read any other ConfigMap. `create` cannot name an object that does
# not exist yet, so it alone is unrestricted.
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: {{ include "rollgate.configMapNames" . }}
  verbs: ["get", "list", "watch", "patch"]
# The shards of a document over one ConfigMap's limit: written, and deleted when fewer are
# needed.
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: {{ include "rollgate.shardNames" . }}
  verbs: ["get", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The port of prometheus.url: explicit, or 443/80 from the scheme. */}}
{{- define "rollgate.prometheusPort" -}}
{{- $u := urlParse .Values.prometheus.url }}
{{- $hostPort := splitList ":" $u.host }}
{{- if gt (len $hostPort) 1 }}
{{- last $hostPort }}
{{- else if eq $u.scheme "https" }}
{{- 443 }}
{{- else }}
{{- 80 }}
{{- end }}
{{- end }}

{{/* Every ConfigMap name flags may publish to, as a JSON list: configMapName first. */}}
{{- define "rollgate.configMapNames" -}}
{{- prepend .Values.extraConfigMapNames .Values.configMapName | uniq | toJson }}
{{- end }}

{{/* Every shard ConfigMap name, as a JSON list: <name>-shard-<i> for each name and i < maxShards. */}}
{{- define "rollgate.shardNames" -}}
{{- $names := list }}
{{- range (prepend .Values.extraConfigMapNames .Values.configMapName | uniq) }}
{{- $name := . }}
{{- range until (int $.Values.maxShards) }}
{{- $names = append $names (printf "%s-shard-%d" $name .) }}
{{- end }}
{{- end }}
{{- $names | toJson }}
{{- end }}

{{/*
The relay's labels. Its `app.kubernetes.io/name` is `<name>-relay`, so the operator's
selectors (Deployment, metrics Service, NetworkPolicy) never pick relay pods, and the
relay's never pick operator pods.
*/}}
{{- define "rollgate.relay.fullname" -}}
{{- printf "%s-relay" (include "rollgate.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "rollgate.relay.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-relay" (include "rollgate.name" . | trunc 57 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rollgate.relay.labels" -}}
helm.sh/chart: {{ include "rollgate.chart" . }}
{{ include "rollgate.relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: relay
app.kubernetes.io/part-of: rollgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rollgate.relay.serviceAccountName" -}}
{{- if .Values.relay.serviceAccount.create }}
{{- default (include "rollgate.relay.fullname" .) .Values.relay.serviceAccount.name }}
{{- else }}
{{- required "relay.serviceAccount.name is required when relay.serviceAccount.create is false" .Values.relay.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces the relay serves, de-duplicated and sorted: relay.namespaces, else the release namespace. */}}
{{- define "rollgate.relay.namespaces" -}}
{{- if .Values.relay.namespaces }}
{{- .Values.relay.namespaces | uniq | sortAlpha | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* The shards of configMapName only (the relay serves that one name): <name>-shard-<i>, i < maxShards. */}}
{{- define "rollgate.relay.shardNames" -}}
{{- $names := list }}
{{- range until (int .Values.maxShards) }}
{{- $names = append $names (printf "%s-shard-%d" $.Values.configMapName .) }}
{{- end }}
{{- $names | toJson }}
{{- end }}

{{/* The PodDisruptionBudget API: policy/v1 from Kubernetes 1.21, policy/v1beta1 before. */}}
{{- define "rollgate.pdbApiVersion" -}}
{{- if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}
{{- "policy/v1" }}
{{- else }}
{{- "policy/v1beta1" }}
{{- end }}
{{- end }}
