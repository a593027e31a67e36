{{/* Chart name, at most 63 characters (a label value). */}}
{{- define "db-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name, with the chart name unless it is in it. */}}
{{- define "db-operator.fullname" -}}
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

{{- define "db-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "db-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "db-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "db-operator.labels" -}}
helm.sh/chart: {{ include "db-operator.chart" . }}
{{ include "db-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: db-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Rules on the cluster-scoped DbInstances: the operator adds finalizers and owner references
(update) and writes status, but never creates or deletes them. Owner references with
blockOwnerDeletion need update on the owner's finalizers.
*/}}
{{- define "db-operator.instanceRules" -}}
- apiGroups: ["kci.rocks"]
  resources: ["dbinstances"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["kci.rocks"]
  resources: ["dbinstances/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kci.rocks"]
  resources: ["dbinstances/finalizers"]
  verbs: ["update"]
{{- end }}

{{/*
Rules in each namespace the operator works in: Databases and DbRestores, the credentials
Secrets and their copies beside the admin Secret, the ServiceAccounts its pods run as, the
commissioning and restore Jobs and backup CronJobs, and Events.
*/}}
{{- define "db-operator.namespacedRules" -}}
- apiGroups: ["kci.rocks"]
  resources: ["databases", "dbrestores"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["kci.rocks"]
  resources: ["databases/status", "dbrestores/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["kci.rocks"]
  resources: ["databases/finalizers", "dbrestores/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Schema ConfigMaps are read; their per-version copies beside the admin Secret are created
# for the commissioning Jobs and deleted with the Database.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Backup and restore pods' termination messages carry the object key and size of the backup.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
{{ include "db-operator.eventRules" . }}
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}

{{- define "db-operator.eventRules" -}}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
