{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "esi-federation-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "esi-federation-server.fullname" -}}
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

{{- define "esi-federation-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esi-federation-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "esi-federation-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "esi-federation-server.labels" -}}
helm.sh/chart: {{ include "esi-federation-server.chart" . }}
{{ include "esi-federation-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: federation-server
app.kubernetes.io/part-of: esi-federation
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "esi-federation-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "esi-federation-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag defaults to the appVersion. */}}
{{- define "esi-federation-server.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "esi-federation-server.serviceName" -}}
{{- include "esi-federation-server.fullname" . }}
{{- end }}

{{/* DNS names of the server certificate: the public ones first, then the Service's. */}}
{{- define "esi-federation-server.dnsNames" -}}
{{- $svc := include "esi-federation-server.serviceName" . }}
{{- $own := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
{{- concat .Values.tls.dnsNames $own | uniq | toJson }}
{{- end }}

{{- define "esi-federation-server.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "esi-federation-server.fullname" .) }}
{{- end }}
{{- end }}

{{- define "esi-federation-server.certificateName" -}}
{{- printf "%s-serving" (include "esi-federation-server.fullname" .) }}
{{- end }}

{{- define "esi-federation-server.issuerName" -}}
{{- printf "%s-selfsigned" (include "esi-federation-server.fullname" .) }}
{{- end }}

{{/*
The Helm-generated TLS material, as a dict {ca, crt, key} of PEM strings.
Generated once: an existing Secret of this release is read back with `lookup`, so upgrades (and GitOps
re-renders against the cluster) keep the same CA. The result is cached in the root context so that every
template asking for it (the Secret, NOTES) sees the same material.
*/}}
{{- define "esi-federation-server.generatedTLS" -}}
{{- if not (hasKey .Values "esiFederationGeneratedTLSCache") }}
{{- $secretName := include "esi-federation-server.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $tls := dict }}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") (hasKey $existing.data "ca.crt") }}
{{- $tls = dict "ca" (index $existing.data "ca.crt" | b64dec) "crt" (index $existing.data "tls.crt" | b64dec) "key" (index $existing.data "tls.key" | b64dec) }}
{{- else }}
{{- $days := int .Values.tls.generatedValidityDays }}
{{- /* ECDSA P-256, not Helm's default RSA 2048: a server signs in every TLS handshake, and each pod start is a new connection. */}}
{{- $ca := genCAWithKey (printf "%s-ca" (include "esi-federation-server.fullname" .)) $days (genPrivateKey "ecdsa") }}
{{- $dnsNames := include "esi-federation-server.dnsNames" . | fromJsonArray }}
{{- $cert := genSignedCertWithKey (first $dnsNames) nil $dnsNames $days $ca (genPrivateKey "ecdsa") }}
{{- $tls = dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key }}
{{- end }}
{{- $_ := set .Values "esiFederationGeneratedTLSCache" $tls }}
{{- end }}
{{- .Values.esiFederationGeneratedTLSCache | toJson }}
{{- end }}

{{/* Fail early on contradicting TLS choices. */}}
{{- define "esi-federation-server.validate" -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret }}
{{- fail "tls.certManager.enabled and tls.existingSecret are mutually exclusive: choose one TLS source" }}
{{- end }}
{{- end }}

{{/* The server's command line (flags of `esi-federation serve`, README.md and docs/kubernetes-mode.md). */}}
{{- define "esi-federation-server.args" -}}
{{- $s := .Values.server }}
{{- $args := list "serve" "--kubernetes" "--bind" "0.0.0.0:8443" "--tls-cert" "/tls/tls.crt" "--tls-key" "/tls/tls.key" }}
{{- $args = concat $args (list "--audience" $s.audience) }}
{{- if $s.allowExtraAudiences }}
{{- $args = append $args "--allow-extra-audiences" }}
{{- end }}
{{- $args = concat $args (list "--max-token-lifetime" (toString $s.maxTokenLifetime)) }}
{{- $args = concat $args (list "--rate-limit" (toString $s.rateLimit)) }}
{{- $args = concat $args (list "--store-cache-ttl" (toString $s.storeCacheTTL)) }}
{{- $args = concat $args (list "--workers" (toString (int $s.workers)) "--threads" (toString (int $s.threads))) }}
{{- $args = concat $args (list "--log-level" $s.logLevel) }}
{{- $args = concat $args $s.extraArgs }}
{{- toYaml $args }}
{{- end }}

{{/* The helm test's check: GET each path given on the command line; any answer but 2xx fails. */}}
{{- define "esi-federation-server.probeScript" -}}
import os, ssl, sys, urllib.request
ca = os.environ["ESI_TEST_CA_FILE"]
ca = ca if os.path.exists(ca) else None
context = ssl.create_default_context(cafile=ca)
for path in sys.argv[1:]:
    with urllib.request.urlopen(os.environ["ESI_TEST_URL"] + path, context=context, timeout=10) as answer:
        print(path, answer.status)
{{- end }}
