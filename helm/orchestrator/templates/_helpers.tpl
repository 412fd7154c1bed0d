{{/*
Names and labels. orchestrator/deploy/names.py computes the same; tests/helm compares them.
*/}}
{{- define "orchestrator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "orchestrator.fullname" -}}
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

{{- define "orchestrator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "orchestrator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "orchestrator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: orchestrator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "orchestrator.serviceAccountName" -}}
{{- if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else if .Values.serviceAccount.create }}
{{- include "orchestrator.fullname" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{- define "orchestrator.catalogConfigMap" -}}
{{- .Values.catalog.existingConfigMap | default (printf "%s-catalog" (include "orchestrator.fullname" .)) }}
{{- end }}

{{- define "orchestrator.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default (printf "%s-policy" (include "orchestrator.fullname" .)) }}
{{- end }}

{{- define "orchestrator.ledgerClaim" -}}
{{- .Values.ledger.existingClaim | default (printf "%s-ledger" (include "orchestrator.fullname" .)) }}
{{- end }}

{{/* "true" when a PostgreSQL ledger is set (database.url or database.existingSecret), else "". */}}
{{- define "orchestrator.databaseConfigured" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{- define "orchestrator.databaseSecret" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "orchestrator.fullname" .)) }}
{{- end }}

{{- define "orchestrator.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{/*
Refuse ingress bounds the server would refuse (values.py ChartValues says the same).
*/}}
{{- define "orchestrator.checkIngress" -}}
{{- if gt (int .Values.ingress.minReplicas) (int .Values.ingress.maxReplicas) }}
{{- fail "ingress.minReplicas exceeds ingress.maxReplicas" }}
{{- end }}
{{- if and (gt (int .Values.ingress.maxReplicas) 1) (not (include "orchestrator.databaseConfigured" .)) }}
{{- fail "ingress.maxReplicas > 1 needs a shared ledger: set database.url or database.existingSecret (PostgreSQL); the SQLite ledger is one pod's file, so replicas would each count budgets and decisions apart" }}
{{- end }}
{{- end }}

{{/* The catalog text the chart ships: values catalog.content, else the bundled file. */}}
{{- define "orchestrator.catalogText" -}}
{{- .Values.catalog.content | default (.Files.Get "files/catalog.yaml") }}
{{- end }}

{{- define "orchestrator.policyText" -}}
{{- .Values.policy.content | default (.Files.Get "files/policy.yaml") }}
{{- end }}

{{/*
Refuse to render when the catalog is not the one the worker groups were generated from.
*/}}
{{- define "orchestrator.checkGenerated" -}}
{{- $want := .Values.generated.catalogSha256 }}
{{- if not $want }}
{{- fail "generated.catalogSha256 is empty: pass the values that `orchestrator render --deployments CATALOG --policy POLICY --chart-values` prints (-f generated-values.yaml)" }}
{{- end }}
{{- if not .Values.catalog.existingConfigMap }}
{{- $got := include "orchestrator.catalogText" . | sha256sum }}
{{- if ne $got $want }}
{{- fail (printf "the catalog (sha256 %s) is not the one the worker groups were generated from (generated.catalogSha256 %s): run `orchestrator render --deployments CATALOG --policy POLICY --chart-values > generated-values.yaml` and install with -f generated-values.yaml" $got $want) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod template of a Ray group. Args: root (the chart context), component, container, resources,
nodeSelector, tolerations, affinity, annotations. Mirrors rayservice.py `_pod_template`.
*/}}
{{- define "orchestrator.podTemplate" -}}
{{- $ := .root }}
{{- $v := $.Values }}
{{- $head := eq .component "ray-head" }}
metadata:
  labels:
    {{- include "orchestrator.selectorLabels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "orchestrator.serviceAccountName" $ }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      ports:
        {{- if $head }}
        - name: gcs-server
          containerPort: 6379
        - name: dashboard
          containerPort: 8265
        - name: client
          containerPort: 10001
        {{- end }}
        - name: serve
          containerPort: {{ $v.serve.port }}
        - name: metrics
          containerPort: 8080
      env:
        - name: ORCHESTRATOR_STATE_DIR
          value: /var/lib/orchestrator/state
        - name: ORCHESTRATOR_CACHE_DIR
          value: /home/ray/.cache/orchestrator
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- if include "orchestrator.databaseConfigured" $ }}
        - name: ORCHESTRATOR_DATABASE_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "orchestrator.databaseSecret" $ }}
              key: {{ include "orchestrator.databaseSecretKey" $ }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.tenantKeys.existingSecret }}
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: cache
          mountPath: /home/ray/.cache
        - name: shm
          mountPath: /dev/shm
        - name: catalog
          mountPath: /etc/orchestrator/catalog
          readOnly: true
        - name: policy
          mountPath: /etc/orchestrator/policy
          readOnly: true
        {{- if $v.tenantKeys.existingSecret }}
        - name: tenant-keys
          mountPath: /var/run/secrets/orchestrator
          readOnly: true
        {{- end }}
        - name: state
          mountPath: /var/lib/orchestrator
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.volumes.tmpSizeLimit }}
    - name: cache
      emptyDir:
        sizeLimit: {{ $v.volumes.cacheSizeLimit }}
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.volumes.shmSizeLimit }}
    {{- /* directory mounts (no subPath): kubelet's symlink swap propagates edits */}}
    - name: catalog
      configMap:
        name: {{ include "orchestrator.catalogConfigMap" $ }}
        items:
          - key: {{ $v.catalog.key | default "catalog.yaml" }}
            path: catalog.yaml
    - name: policy
      configMap:
        name: {{ include "orchestrator.policyConfigMap" $ }}
        items:
          - key: {{ $v.policy.key | default "policy.yaml" }}
            path: policy.yaml
    {{- with $v.tenantKeys.existingSecret }}
    - name: tenant-keys
      secret:
        secretName: {{ . }}
    {{- end }}
    {{- if and $head $v.ledger.enabled }}
    - name: state
      persistentVolumeClaim:
        claimName: {{ include "orchestrator.ledgerClaim" $ }}
    {{- else }}
    - name: state
      emptyDir: {}
    {{- end }}
{{- end }}

{{/* `ray start --labels` value of a label map: k=v pairs sorted by key, comma-separated
     (orchestrator.deploy.workers.ray_labels) */}}
{{- define "orchestrator.rayLabels" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
