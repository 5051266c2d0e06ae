# TEST CHART: the values Helm rendered, for tests to read back.
# (.tpl, not .yaml: Helm renders it all the same, and YAML linters leave Go templates alone.)
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-rendered-values
  namespace: {{ .Release.Namespace }}
data:
  values.json: {{ .Values | toJson | quote }}
