{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "vaultscan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; suffixes like "-migrate" must still fit in 63 characters. */}}
{{- define "vaultscan.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vaultscan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vaultscan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The scanner pods only: the migration Job's pods share the base selector labels. */}}
{{- define "vaultscan.scannerSelectorLabels" -}}
{{ include "vaultscan.selectorLabels" . }}
app.kubernetes.io/component: scanner
{{- end }}

{{- define "vaultscan.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vaultscan.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vaultscan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vaultscan.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vaultscan.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* vaultscan.yaml: the same text for the scanner's ConfigMap and the migration hook's. */}}
{{- define "vaultscan.configFile" -}}
{{- toYaml .Values.config }}
{{- end }}

{{/* Environment shared by the scanner and the migration Job. */}}
{{- define "vaultscan.env" -}}
- name: VAULTSCAN_CONFIG
  value: /etc/vaultscan/vaultscan.yaml
- name: VAULTSCAN_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
- name: VAULTSCAN_METRICS__PORT
  value: {{ .Values.metricsPort | quote }}
{{- with .Values.externalId }}
{{- if .existingSecret }}
{{- if .memberKey }}
- name: VAULTSCAN_MEMBER__EXTERNAL_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .memberKey }}
{{- end }}
{{- if .organizationKey }}
- name: VAULTSCAN_ORGANIZATION__EXTERNAL_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .organizationKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level hardening, shared by every pod the chart runs. */}}
{{- define "vaultscan.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vaultscan.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The alert rules file, shared with exporters/ through a symlink in files/. */}}
{{- define "vaultscan.alertRules" -}}
{{- $text := .Files.Get "files/vaultscan.rules.yml" }}
{{- if not $text }}
{{- fail "prometheusRule.enabled: files/vaultscan.rules.yml is missing from the chart (it links to exporters/rules/vaultscan.rules.yml)" }}
{{- end }}
{{- $rules := fromYaml $text }}
{{- if not $rules.groups }}
{{- fail "files/vaultscan.rules.yml has no rule groups" }}
{{- end }}
{{- $overrides := .Values.prometheusRule.alerts | default dict }}
{{- $base := .Values.runbookBaseUrl | default "" | trimSuffix "/" }}
{{- $threshold := .Values.prometheusRule.complianceThreshold | default 0.95 }}
{{- range $group := $rules.groups }}
{{- $kept := list }}
{{- range $rule := $group.rules }}
{{- $override := get $overrides ($rule.alert | default "") | default dict }}
{{- if ne (toString (get $override "enabled")) "false" }}
{{- if $override.severity }}{{ $_ := set $rule.labels "severity" $override.severity }}{{ end }}
{{- if $override.for }}{{ $_ := set $rule "for" $override.for }}{{ end }}
{{- if eq ($rule.alert | default "") "VaultscanComplianceBelowThreshold" }}
{{- $_ := set $rule "expr" (replace "< 0.95" (printf "< %v" $threshold) $rule.expr) }}
{{- $percent := printf "%v%%" (mulf $threshold 100.0) }}
{{- $_ := set $rule.annotations "description" (replace "95%" $percent $rule.annotations.description) }}
{{- end }}
{{- if and $base $rule.annotations $rule.annotations.runbook_url }}
{{- $_ := set $rule.annotations "runbook_url" (printf "%s/%s" $base $rule.annotations.runbook_url) }}
{{- end }}
{{- $kept = append $kept $rule }}
{{- end }}
{{- end }}
{{- $_ := set $group "rules" $kept }}
{{- end }}
{{- toYaml $rules.groups }}
{{- end }}

{{/* Refuse a database URL anywhere in the values: it would sit in clear in the release
(helm get values) and in the ConfigMap. The URL belongs in a Secret. */}}
{{- define "vaultscan.validateValues" -}}
{{- $advice := "put the database URL in a Secret and name it in database.existingSecret (key database.secretKey), e.g.: kubectl create secret generic vaultscan-db --from-literal=url='postgresql+psycopg://USER:PASSWORD@HOST:5432/vaultscan'" }}
{{- if .Values.database.url }}
{{- fail (printf "database.url is set in the values: a URL there would be stored in clear in the release; %s" $advice) }}
{{- end }}
{{- if and .Values.config.database (hasKey .Values.config.database "url") }}
{{- fail (printf "config.database.url is set in the values: it would be written in clear to the ConfigMap; %s" $advice) }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if eq .name "VAULTSCAN_DATABASE__URL" }}
{{- fail (printf "extraEnv sets VAULTSCAN_DATABASE__URL: the chart already sets it from database.existingSecret; %s" $advice) }}
{{- end }}
{{- end }}
{{- end }}
