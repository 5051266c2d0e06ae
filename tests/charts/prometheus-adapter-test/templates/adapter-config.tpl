{{- /* TEST CHART: records what prometheus-adapter would be configured with; runs nothing. */ -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-test-adapter-config
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: prometheus-adapter-test
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  # The adapter's --prometheus-url argument.
  prometheus-url: {{ printf "%s:%v%s" (tpl .Values.prometheus.url .) .Values.prometheus.port .Values.prometheus.path | quote }}
  # Whether the chart's built-in container rules would be included.
  default-rules: {{ .Values.rules.default | quote }}
  # The adapter's config.yaml rules, passed through tpl as the real chart does.
  config.yaml: |
    rules:
{{- if .Values.rules.custom }}
{{ tpl (toYaml .Values.rules.custom) . | indent 4 }}
{{- else }} []
{{- end }}
