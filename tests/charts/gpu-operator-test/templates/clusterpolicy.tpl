# TEST CHART: the ClusterPolicy the real chart creates, with the values that
# (.tpl, not .yaml: Helm renders it all the same, and YAML linters leave Go templates alone.)
# reach it. No operator reconciles it.
apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata:
  name: cluster-policy
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
spec:
  operator:
    defaultRuntime: {{ .Values.operator.defaultRuntime | quote }}
  driver:
    enabled: {{ .Values.driver.enabled }}
  toolkit:
    enabled: {{ .Values.toolkit.enabled }}
  mig:
    strategy: {{ .Values.mig.strategy | quote }}
  dcgmExporter:
    enabled: {{ .Values.dcgmExporter.enabled }}
    serviceMonitor: {{- toYaml .Values.dcgmExporter.serviceMonitor | nindent 6 }}
    {{- if .Values.dcgmExporter.config.name }}
    config:
      name: {{ .Values.dcgmExporter.config.name | quote }}
    {{- end }}
  devicePlugin:
    {{- if .Values.devicePlugin.config.name }}
    config:
      name: {{ .Values.devicePlugin.config.name | quote }}
      default: {{ .Values.devicePlugin.config.default | quote }}
    {{- end }}
