"""Kubernetes resources (as dicts) -> one ``Configuration``.

Both configuration sources call ``build_configuration``: the manifests directory and the Kubernetes
watch. A resource that does not have the required shape makes the whole batch fail with a
``ConfigurationError`` that names the resource and the field, so a broken change is never half-applied.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from federation.config.model import (
    DEFAULT_ISSUER,
    Configuration,
    Federation,
    Grant,
    KubeSecret,
    SecretKeyRef,
    StoreConfig,
)
from federation.errors import ConfigurationError
from federation.generators import model as generator_model
from federation.generators.checks import spec_problem
from federation.generators.model import (
    GENERATOR_API,
    GeneratorConfig,
    GeneratorRef,
    GeneratorSpecError,
    parse_generator,
)

FEDERATION_API = "identity.federation.external-secrets.io/v1alpha1"
AUTHORIZATION_API = "federation.external-secrets.io/v1alpha1"
# ESI's published samples declare KubernetesFederation in the Authorization's group: still read, deprecated.
ESI_FEDERATION_API = AUTHORIZATION_API
STORE_APIS = ("external-secrets.io/v1", "external-secrets.io/v1beta1")
STORE_PROVIDERS = ("vault", "kubernetes", "fake")
SUBJECT_PATTERN = re.compile(
    r"^system:serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"
)
_KINDS: dict[tuple[str, str], str] = {
    (FEDERATION_API, "KubernetesFederation"): "KubernetesFederation",
    (ESI_FEDERATION_API, "KubernetesFederation"): "KubernetesFederation",
    (AUTHORIZATION_API, "Authorization"): "Authorization",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    **{(api_version, "ClusterSecretStore"): "ClusterSecretStore" for api_version in STORE_APIS},
    **{(GENERATOR_API, kind): "Generator" for kind in generator_model.KINDS},
}
# Where each of our kinds lives, to name the right apiVersion when a resource uses another one.
_HOMES = {
    "KubernetesFederation": (FEDERATION_API,),
    "Authorization": (AUTHORIZATION_API,),
    "ClusterSecretStore": STORE_APIS,
}
# ESO's other kinds: not read by this server, and each says why rather than vanishing.
_NOT_SERVED = {
    "SecretStore": "a namespaced store is not served: Authorizations grant ClusterSecretStores only; "
    "make it a ClusterSecretStore (its Secret references then need a namespace)",
    "ExternalSecret": "ExternalSecrets are ESO's, not read by the federation server; "
    "clients ask for keys with esi-cli or the webhook's annotations",
    "ClusterExternalSecret": "ClusterExternalSecrets are ESO's, not read by the federation server",
    "PushSecret": "PushSecrets are ESO's; the federation server only reads stores",
    "ClusterPushSecret": "ClusterPushSecrets are ESO's; the federation server only reads stores",
}
_OUR_GROUPS = (
    "identity.federation.external-secrets.io",
    "federation.external-secrets.io",
    "external-secrets.io",
    "generators.external-secrets.io",
)


class _Problems:
    """Collects every problem of a batch, so one load reports all of them at once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def resource_kind(resource: Mapping[str, Any]) -> str | None:
    """Return which of our kinds ``resource`` is ('KubernetesFederation', ...), or None."""
    return _KINDS.get((str(resource.get("apiVersion")), str(resource.get("kind"))))


def ignored_reason(resource: Mapping[str, Any]) -> str | None:
    """Why a resource of one of our API groups is not loaded (None: it is loaded, or not ours).

    Resources of other groups (a Namespace, a Deployment) may share the directory and are skipped
    quietly; within our groups nothing is skipped without a word.
    """
    if resource_kind(resource) is not None:
        return None
    api, kind = str(resource.get("apiVersion")), str(resource.get("kind"))
    group = api.rpartition("/")[0]
    if kind in _HOMES:
        return (
            f"apiVersion {api!r} is not one this server reads for {kind} "
            f"(use {' or '.join(_HOMES[kind])}); the resource is ignored"
        )
    if group not in _OUR_GROUPS:
        return None
    if kind in _NOT_SERVED:
        return _NOT_SERVED[kind] + "; the resource is ignored"
    if group == GENERATOR_API.rpartition("/")[0]:
        return (
            f"generator kind {kind!r} is not served (served: {', '.join(generator_model.KINDS)} of "
            f"{GENERATOR_API}); the resource is ignored"
        )
    return f"kind {kind!r} is not one of {api}'s kinds this server reads; the resource is ignored"


def describe(resource: Mapping[str, Any]) -> str:
    """``Kind name`` (``Kind namespace/name`` when namespaced), for messages."""
    meta = resource.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name", "<unnamed>")
    namespace = meta.get("namespace")
    return f"{resource.get('kind', '<no kind>')} {namespace + '/' if namespace else ''}{name}"


def build_configuration(resources: Iterable[Mapping[str, Any]], source: str) -> Configuration:
    """Parse every resource of a batch; raise ``ConfigurationError`` listing every problem found."""
    problems = _Problems()
    federations: dict[str, Federation] = {}
    grants: list[Grant] = []
    stores: dict[str, StoreConfig] = {}
    generators: dict[GeneratorRef, GeneratorConfig] = {}
    objects: dict[str, dict[tuple[str, str], KubeSecret]] = {"Secret": {}, "ConfigMap": {}}
    ignored: list[str] = []
    deprecated: list[str] = []
    for resource in resources:
        kind = resource_kind(resource)
        where = describe(resource)
        reason = ignored_reason(resource)
        if reason is not None:
            ignored.append(f"{where}: {reason}")
        name = _name(resource, where, problems)
        if kind is None or name is None:
            continue
        spec = resource.get("spec") if kind not in objects else resource
        if not isinstance(spec, dict):
            problems.add(where, "spec must be a mapping")
            continue
        if kind == "KubernetesFederation":
            if resource.get("apiVersion") == ESI_FEDERATION_API:
                deprecated.append(
                    f"{where}: apiVersion {ESI_FEDERATION_API} (ESI's samples) is deprecated for "
                    f"KubernetesFederation; write {FEDERATION_API}"
                )
            _add_unique(federations, name, _federation(name, spec, where, problems), where, problems)
        elif kind == "Authorization":
            grant = _grant(name, spec, where, problems, deprecated)
            if grant is not None:
                grants.append(grant)
        elif kind == "ClusterSecretStore":
            # A store is ESO's object, often for providers this server does not serve (aws, gcp...):
            # one that cannot be served is skipped (logged, counted, and a problem for ``check``),
            # never the reason every other store, federation and Authorization stops loading.
            store_problems = _Problems()
            store = _store(name, spec, where, store_problems)
            ignored.extend(f"{problem}; the store is skipped" for problem in store_problems.items)
            _add_unique(stores, name, store, where, problems)
        elif kind == "Generator":
            generator = _generator(resource, where, problems)
            _add_unique(generators, generator.ref if generator else None, generator, where, problems)
        else:
            _add_object(objects[kind], resource, name, where, problems)
    if problems.items:
        raise ConfigurationError(problems.items)
    return Configuration(
        federations,
        tuple(grants),
        stores,
        objects["Secret"],
        source,
        config_maps=objects["ConfigMap"],
        ignored=tuple(ignored),
        deprecated=tuple(deprecated),
        generators=generators,
    )


def _add_object(
    held: dict[tuple[str, str], KubeSecret],
    resource: Mapping[str, Any],
    name: str,
    where: str,
    problems: _Problems,
) -> None:
    """A Secret or ConfigMap, decoded, under its namespace and name."""
    data = _object_data(resource, where, problems)
    if data is not None:
        namespace = _namespace(resource)
        _add_unique(held, (namespace, name), KubeSecret(namespace, name, data), where, problems)


def _generator(resource: Mapping[str, Any], where: str, problems: _Problems) -> GeneratorConfig | None:
    try:
        generator = parse_generator(resource)
    except GeneratorSpecError as exc:
        problems.add(where, str(exc).split(": ", 1)[-1])
        return None
    problem = spec_problem(generator)
    if problem is not None:
        problems.add(where, problem.split(": ", 1)[-1])
        return None
    return generator


def _add_unique(target: dict[Any, Any], key: Any, value: Any, where: str, problems: _Problems) -> None:
    if value is None:
        return
    if key in target:
        problems.add(where, "defined twice")
        return
    target[key] = value


def _name(resource: Mapping[str, Any], where: str, problems: _Problems) -> str | None:
    meta = resource.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        if resource_kind(resource) is not None:
            problems.add(where, "metadata.name is required")
        return None
    return name


def _string(
    spec: Mapping[str, Any], field: str, where: str, problems: _Problems, *, required: bool = False
) -> str | None:
    value = spec.get(field)
    if value is None:
        if required:
            problems.add(where, f"{field} is required")
        return None
    if not isinstance(value, str) or not value:
        problems.add(where, f"{field} must be a non-empty string")
        return None
    return value


def _https_url(
    spec: Mapping[str, Any], field: str, where: str, problems: _Problems, *, required: bool
) -> str | None:
    url = _string(spec, field, where, problems, required=required)
    if url is not None and not url.startswith("https://"):
        problems.add(where, f"{field} must be an https:// URL, got {url!r}")
        return None
    return url


def _key_ref(value: Any, field: str, where: str, problems: _Problems) -> SecretKeyRef | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) and value.get(k) for k in ("name", "key")
    ):
        problems.add(where, f"{field} needs string fields name, namespace and key")
        return None
    namespace = value.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        problems.add(where, f"{field}.namespace is required (the resource is cluster-scoped)")
        return None
    return SecretKeyRef(value["name"], namespace, value["key"])


def _federation(name: str, spec: Mapping[str, Any], where: str, problems: _Problems) -> Federation | None:
    before = len(problems.items)
    url = _https_url(spec, "url", where, problems, required=True)
    jwks_url = _https_url(spec, "jwksURL", where, problems, required=False)
    issuer = _string(spec, "issuer", where, problems) or DEFAULT_ISSUER
    ca_bundle = _string(spec, "caBundle", where, problems)
    if ca_bundle is not None and "-----BEGIN CERTIFICATE-----" not in ca_bundle:
        problems.add(where, "caBundle must hold PEM certificates")
    static_jwks = spec.get("jwks")
    if static_jwks is not None and not (
        isinstance(static_jwks, dict) and isinstance(static_jwks.get("keys"), list)
    ):
        problems.add(where, 'jwks must be an object {"keys": [...]}')
    audiences = spec.get("audiences", [])
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        problems.add(where, "audiences must be a list of non-empty strings")
        audiences = []
    token_ref = _key_ref(spec.get("tokenSecretRef"), "tokenSecretRef", where, problems)
    review = spec.get("tokenReview")
    review_ref = None
    if review is not None:
        review_ref = _key_ref(
            review.get("tokenSecretRef") if isinstance(review, dict) else None,
            "tokenReview.tokenSecretRef",
            where,
            problems,
        )
        if review_ref is None and not (isinstance(review, dict) and review.get("tokenSecretRef")):
            problems.add(where, "tokenReview needs a tokenSecretRef")
    if len(problems.items) > before or url is None:
        return None
    return Federation(
        name=name,
        url=url,
        issuer=issuer,
        ca_bundle=ca_bundle,
        jwks_url=jwks_url,
        static_jwks=json.loads(json.dumps(static_jwks)) if static_jwks is not None else None,
        audiences=tuple(audiences),
        token_secret_ref=token_ref,
        token_review_secret_ref=review_ref,
    )


def _grant(
    name: str, spec: Mapping[str, Any], where: str, problems: _Problems, deprecated: list[str]
) -> Grant | None:
    before = len(problems.items)
    ref = spec.get("federationRef")
    if (
        not isinstance(ref, dict)
        or ref.get("kind") != "KubernetesFederation"
        or not isinstance(ref.get("name"), str)
    ):
        problems.add(where, "federationRef must be {kind: KubernetesFederation, name: <federation>}")
    issuer, subject = _subject(spec.get("subject"), where, problems, deprecated)
    generators = _allowed_generators(spec.get("allowedGenerators"), where, problems)
    states = _allowed_generator_states(spec.get("allowedGeneratorStates"), where, problems)
    # An Authorization that grants only generators needs no store.
    stores_required = not generators and not states
    stores = _string_list(spec, "allowedClusterSecretStores", where, problems, required=stores_required)
    patterns = _string_list(spec, "allowedSecrets", where, problems, required=False)
    if len(problems.items) > before or issuer is None or subject is None:
        return None
    if stores is None and stores_required:
        return None
    return Grant(
        name=name,
        federation=str(ref["name"]) if isinstance(ref, dict) else "",
        issuer=issuer,
        subject=subject,
        stores=frozenset(stores or ()),
        secret_patterns=tuple(patterns) if patterns is not None else None,
        generators=frozenset(generators),
        generator_state_namespaces=frozenset(states),
    )


def _allowed_generators(value: Any, where: str, problems: _Problems) -> list[GeneratorRef]:
    """``allowedGenerators: [{name, kind, namespace}]``."""
    if value is None:
        return []
    shape = "allowedGenerators must be a list of {name, kind, namespace}"
    if not isinstance(value, list):
        problems.add(where, shape)
        return []
    refs = []
    for index, item in enumerate(value):
        parts = {
            part: item.get(part) if isinstance(item, dict) else None for part in ("namespace", "kind", "name")
        }
        if not all(isinstance(part, str) and part for part in parts.values()):
            problems.add(where, f"{shape} (item {index})")
            continue
        ref = GeneratorRef(str(parts["namespace"]), str(parts["kind"]), str(parts["name"]))
        problem = ref.problem()
        if problem is not None:
            problems.add(where, f"allowedGenerators item {index}: {problem}")
            continue
        refs.append(ref)
    return refs


def _allowed_generator_states(value: Any, where: str, problems: _Problems) -> list[str]:
    """``allowedGeneratorStates: [{namespace}]``."""
    if value is None:
        return []
    shape = "allowedGeneratorStates must be a list of {namespace}"
    if not isinstance(value, list):
        problems.add(where, shape)
        return []
    namespaces = []
    for index, item in enumerate(value):
        namespace = item.get("namespace") if isinstance(item, dict) else None
        if not isinstance(namespace, str) or not generator_model.NAMESPACE.match(namespace):
            problems.add(where, f"{shape} (item {index} has no valid namespace)")
            continue
        namespaces.append(namespace)
    return namespaces


def _subject(
    node: Any, where: str, problems: _Problems, deprecated: list[str]
) -> tuple[str | None, str | None]:
    """``subject.oidc {issuer, subject}``; ESI's samples put both directly under ``subject``, which is
    read too, with a deprecation. One problem per shape error, never the same one three times."""
    field = "subject.oidc"
    oidc: Any
    if isinstance(node, dict) and "oidc" not in node and ("issuer" in node or "subject" in node):
        deprecated.append(
            f"{where}: subject {{issuer, subject}} without oidc (ESI's samples) is deprecated; "
            "write subject.oidc {issuer, subject}"
        )
        field, oidc = "subject", node
    else:
        oidc = node.get("oidc") if isinstance(node, dict) else None
    if not isinstance(oidc, dict):
        problems.add(where, "subject.oidc {issuer, subject} is required")
        return None, None
    missing = [part for part in ("issuer", "subject") if oidc.get(part) is None]
    if missing:
        problems.add(where, f"{field} needs {' and '.join(missing)}")
        return None, None
    issuer = _string(oidc, "issuer", f"{where} {field}", problems, required=True)
    subject = _string(oidc, "subject", f"{where} {field}", problems, required=True)
    if subject is not None and not SUBJECT_PATTERN.match(subject):
        problems.add(
            where, f"{field}.subject must be system:serviceaccount:<namespace>:<name>, got {subject!r}"
        )
        subject = None
    return issuer, subject


def _string_list(
    spec: Mapping[str, Any], field: str, where: str, problems: _Problems, *, required: bool
) -> list[str] | None:
    value = spec.get(field)
    if value is None:
        if required:
            problems.add(where, f"{field} is required")
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.add(where, f"{field} must be a list of non-empty strings")
        return None
    return value


def _store(name: str, spec: Mapping[str, Any], where: str, problems: _Problems) -> StoreConfig | None:
    provider = spec.get("provider")
    if not isinstance(provider, dict) or len(provider) != 1:
        problems.add(where, "spec.provider must name exactly one provider")
        return None
    kind, provider_spec = next(iter(provider.items()))
    if kind not in STORE_PROVIDERS:
        problems.add(where, f"provider {kind!r} is not served (served: {', '.join(STORE_PROVIDERS)})")
        return None
    if not isinstance(provider_spec, dict):
        problems.add(where, f"provider.{kind} must be a mapping")
        return None
    if kind == "fake" and not _fake_data_ok(provider_spec):
        problems.add(
            where,
            "provider.fake.data must be a list of {key, value | valueMap[, version]}: a string key, and a "
            "string value or a valueMap of strings",
        )
        return None
    return StoreConfig(name, kind, json.loads(json.dumps(provider_spec)))


def _fake_data_ok(spec: Mapping[str, Any]) -> bool:
    """ESO's fake entries: ``value`` (a string), or ``valueMap`` (ESO's older map form), never both."""
    data = spec.get("data", [])
    return isinstance(data, list) and all(
        isinstance(item, dict) and isinstance(item.get("key"), str) and _fake_value_ok(item) for item in data
    )


def _fake_value_ok(item: Mapping[str, Any]) -> bool:
    value, value_map = item.get("value"), item.get("valueMap")
    if value_map is None:
        return isinstance(value, str)
    return (
        value is None
        and isinstance(value_map, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value_map.items())
    )


def _namespace(resource: Mapping[str, Any]) -> str:
    meta = resource.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    return str(namespace or "default")


def _object_data(resource: Mapping[str, Any], where: str, problems: _Problems) -> dict[str, bytes] | None:
    """A Secret's ``data`` (base64) and ``stringData``, or a ConfigMap's ``data`` (text) and
    ``binaryData`` (base64), decoded to bytes."""
    encoded_field, text_field = (
        ("data", "stringData") if resource["kind"] == "Secret" else ("binaryData", "data")
    )
    encoded = resource.get(encoded_field) or {}
    text = resource.get(text_field) or {}
    if not isinstance(encoded, dict) or not isinstance(text, dict):
        problems.add(where, f"{encoded_field} and {text_field} must be mappings")
        return None
    decoded: dict[str, bytes] = {}
    for key, value in encoded.items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            problems.add(where, f"{encoded_field}.{key} is not valid base64")
    for key, value in text.items():
        decoded[str(key)] = str(value).encode()
    return decoded
