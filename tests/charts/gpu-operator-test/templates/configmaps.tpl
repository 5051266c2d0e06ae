# TEST CHART: the ConfigMaps the real chart creates from devicePlugin.config
# (.tpl, not .yaml: Helm renders it all the same, and YAML linters leave Go templates alone.)
# and dcgmExporter.config when create is true.
{{- if and .Values.devicePlugin.config.create .Values.devicePlugin.config.data }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Values.devicePlugin.config.name }}
  namespace: {{ .Release.Namespace }}
data: {{- toYaml .Values.devicePlugin.config.data | nindent 2 }}
{{- end }}
{{- if and .Values.dcgmExporter.config.create .Values.dcgmExporter.config.data }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Values.dcgmExporter.config.name }}
  namespace: {{ .Release.Namespace }}
data:
  dcgm-metrics.csv: {{ .Values.dcgmExporter.config.data | toJson }}
{{- end }}
