{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "esi-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "esi-webhook.fullname" -}}
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

{{- define "esi-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esi-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "esi-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "esi-webhook.labels" -}}
helm.sh/chart: {{ include "esi-webhook.chart" . }}
{{ include "esi-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: esi-federation
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "esi-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "esi-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to the appVersion. */}}
{{- define "esi-webhook.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "esi-webhook.serviceName" -}}
{{- include "esi-webhook.fullname" . }}
{{- end }}

{{/* DNS names of the Service, which the API server uses to reach the webhook. */}}
{{- define "esi-webhook.dnsNames" -}}
{{- $svc := include "esi-webhook.serviceName" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson }}
{{- end }}

{{- define "esi-webhook.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "esi-webhook.fullname" .) }}
{{- end }}
{{- end }}

{{- define "esi-webhook.certificateName" -}}
{{- printf "%s-serving" (include "esi-webhook.fullname" .) }}
{{- end }}

{{- define "esi-webhook.issuerName" -}}
{{- printf "%s-selfsigned" (include "esi-webhook.fullname" .) }}
{{- end }}

{{/*
The Helm-generated TLS material, as a dict {ca, crt, key} of PEM strings.
Generated once: an existing Secret of this release is read back with `lookup`, so upgrades (and GitOps
re-renders against the cluster) keep the same CA. The result is cached in the root context because the
Secret and the MutatingWebhookConfiguration live in different templates and must agree.
*/}}
{{- define "esi-webhook.generatedTLS" -}}
{{- if not (hasKey .Values "esiGeneratedTLSCache") }}
{{- $secretName := include "esi-webhook.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $tls := dict }}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") (hasKey $existing.data "ca.crt") }}
{{- $tls = dict "ca" (index $existing.data "ca.crt" | b64dec) "crt" (index $existing.data "tls.crt" | b64dec) "key" (index $existing.data "tls.key" | b64dec) }}
{{- else }}
{{- $days := int .Values.tls.generatedValidityDays }}
{{- /* ECDSA P-256, not Helm's default RSA 2048: a server signs in every TLS handshake, and each pod start is a new connection. */}}
{{- $ca := genCAWithKey (printf "%s-ca" (include "esi-webhook.fullname" .)) $days (genPrivateKey "ecdsa") }}
{{- $dnsNames := include "esi-webhook.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCertWithKey (index $dnsNames 2) nil $dnsNames $days $ca (genPrivateKey "ecdsa") }}
{{- $tls = dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key }}
{{- end }}
{{- $_ := set .Values "esiGeneratedTLSCache" $tls }}
{{- end }}
{{- .Values.esiGeneratedTLSCache | toJson }}
{{- end }}

{{/* The base64 CA bundle for the webhook's clientConfig (not used with cert-manager, which injects it). */}}
{{- define "esi-webhook.caBundle" -}}
{{- if .Values.tls.existingSecret }}
{{- if contains "-----BEGIN" .Values.tls.caBundle }}
{{- .Values.tls.caBundle | b64enc }}
{{- else }}
{{- .Values.tls.caBundle | nospace }}
{{- end }}
{{- else }}
{{- (include "esi-webhook.generatedTLS" . | fromJson).ca | b64enc }}
{{- end }}
{{- end }}

{{/* Namespaces the webhook never mutates: the system ones, its own, and the configured extras. */}}
{{- define "esi-webhook.excludedNamespaces" -}}
{{- concat (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) .Values.webhook.excludedNamespaces | uniq | toJson }}
{{- end }}

{{/*
Which pods the API server sends to the webhook: matchConditions, objectSelector or all.
"auto" picks matchConditions where they are GA (Kubernetes 1.30), else all: pods that only carry the
annotation are injected either way.
*/}}
{{- define "esi-webhook.podSelection" -}}
{{- $mode := .Values.webhook.podSelection }}
{{- if eq $mode "auto" }}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}matchConditions{{ else }}all{{ end }}
{{- else }}
{{- $mode }}
{{- end }}
{{- end }}

{{/* CEL, true for a pod whose inject annotation is "true" (the webhook's own test, webhook/annotations.py). */}}
{{- define "esi-webhook.injectCondition" -}}
has(object.metadata.annotations) && 'esi.external-secrets.io/inject' in object.metadata.annotations && object.metadata.annotations['esi.external-secrets.io/inject'] == 'true'
{{- end }}

{{- define "esi-webhook.serverCAPath" -}}
/etc/esi-webhook/server-ca/ca.crt
{{- end }}

{{/* Fail early on combinations that would render a webhook the API server cannot call. */}}
{{- define "esi-webhook.validate" -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret }}
{{- fail "tls.certManager.enabled and tls.existingSecret are mutually exclusive: choose one TLS source" }}
{{- end }}
{{- if and .Values.tls.existingSecret (not .Values.tls.caBundle) }}
{{- fail "tls.existingSecret needs tls.caBundle: the CA (PEM) that signed the Secret's certificate" }}
{{- end }}
{{- if not .Values.federation.clusterName }}
{{- fail "federation.clusterName is required: the name of this cluster's KubernetesFederation on cluster-main" }}
{{- end }}
{{- if not (hasPrefix "https://" .Values.federation.serverURL) }}
{{- fail "federation.serverURL must start with https://" }}
{{- end }}
{{- end }}

{{/* The webhook server's command line (flags of `esi-webhook serve`, docs/webhook.md). */}}
{{- define "esi-webhook.args" -}}
{{- $v := .Values }}
{{- $args := list "serve" "--bind" (printf "0.0.0.0:%d" (int $v.containerPort)) "--tls-cert" "/tls/tls.crt" "--tls-key" "/tls/tls.key" }}
{{- $args = concat $args (list "--workers" (toString (int $v.server.workers)) "--threads" (toString (int $v.server.threads))) }}
{{- $args = concat $args (list "--server-url" $v.federation.serverURL) }}
{{- if $v.federation.allowedServerURLs }}
{{- $args = concat $args (list "--allowed-server-urls" (join "," $v.federation.allowedServerURLs)) }}
{{- end }}
{{- if $v.federation.serverCA }}
{{- $args = concat $args (list "--server-ca-file" (include "esi-webhook.serverCAPath" .)) }}
{{- end }}
{{- $args = concat $args (list "--cluster-name" $v.federation.clusterName) }}
{{- $args = concat $args (list "--audience" $v.federation.audience) }}
{{- $args = concat $args (list "--init-image" (include "esi-webhook.image" (list $v.initContainer.image .))) }}
{{- $args = concat $args (list "--token-expiration" (toString (int $v.federation.tokenExpirationSeconds))) }}
{{- $args = concat $args (list "--excluded-namespaces" (include "esi-webhook.excludedNamespaces" . | fromJsonArray | join ",")) }}
{{- with $v.initContainer.resources.requests }}
{{- if .cpu }}{{ $args = concat $args (list "--init-cpu-request" (toString .cpu)) }}{{ end }}
{{- if .memory }}{{ $args = concat $args (list "--init-memory-request" (toString .memory)) }}{{ end }}
{{- end }}
{{- with $v.initContainer.resources.limits }}
{{- if .cpu }}{{ $args = concat $args (list "--init-cpu-limit" (toString .cpu)) }}{{ end }}
{{- if .memory }}{{ $args = concat $args (list "--init-memory-limit" (toString .memory)) }}{{ end }}
{{- end }}
{{- $args = concat $args (list "--init-run-as-user" (toString (int $v.initContainer.runAsUser)) "--init-run-as-group" (toString (int $v.initContainer.runAsGroup))) }}
{{- $args = concat $args (list "--init-image-pull-policy" $v.initContainer.image.pullPolicy) }}
{{- $args = concat $args (list "--secrets-size-limit" (toString $v.initContainer.secretsSizeLimit)) }}
{{- $args = concat $args (list "--log-level" $v.server.logLevel) }}
{{- $args = concat $args $v.server.extraArgs }}
{{- toYaml $args }}
{{- end }}

{{/* The helm test's check: GET each path given on the command line; any answer but 2xx fails. */}}
{{- define "esi-webhook.probeScript" -}}
import os, ssl, sys, urllib.request
ca = os.environ["ESI_TEST_CA_FILE"]
ca = ca if os.path.exists(ca) else None
context = ssl.create_default_context(cafile=ca, cadata=os.environ.get("ESI_TEST_CA") or None)
for path in sys.argv[1:]:
    with urllib.request.urlopen(os.environ["ESI_TEST_URL"] + path, context=context, timeout=10) as answer:
        print(path, answer.status)
{{- end }}
