"""``esi-federation register``: the KubernetesFederation (and Authorization) of a client cluster.

Reads the client cluster's API server URL and CA from a kubeconfig, its issuer from the discovery
document (asked with the kubeconfig's credentials), and then fetches the JWKS exactly as the federation
server will: anonymously, trusting only that CA. When the anonymous fetch is refused it says what the
client cluster lacks instead of printing a federation that could never verify a token.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from federation.errors import ConfigurationError
from federation.kube.api import KubeApi, KubeApiError
from federation.pinned_https import PinnedRequestError, pinned_request
from federation.settings import Settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
# kube-apiserver answers 406 unless Accept admits application/jwk-set+json (KubeApi asks for the
# discovery document as application/json, which is what it is served as).
JWKS_ACCEPT = "application/jwk-set+json, application/json"
MAX_DOCUMENT_BYTES = 1024 * 1024
FEDERATION_API_VERSION = "identity.federation.external-secrets.io/v1alpha1"
AUTHORIZATION_API_VERSION = "federation.external-secrets.io/v1alpha1"
DISCOVERY_ROLE = "system:service-account-issuer-discovery"
ANONYMOUS_BINDING_COMMAND = (
    "kubectl create clusterrolebinding service-account-issuer-discovery-unauthenticated "
    f"--clusterrole={DISCOVERY_ROLE} --group=system:unauthenticated"
)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SUBJECT = re.compile(
    r"^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$"
)


@dataclass(frozen=True)
class ClusterAccess:
    """What the kubeconfig says about the client cluster: where it is and which CA vouches for it."""

    server: str
    ca_pem: str | None


@dataclass(frozen=True)
class Request:
    """What to register: the federation's name and, optionally, one subject's grant."""

    name: str
    url: str | None = None
    audiences: tuple[str, ...] = ()
    subject: str | None = None
    stores: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()


@dataclass
class Findings:
    """What the checks learnt; ``problems`` empty means the federation will work."""

    issuer: str | None = None
    jwks_uri: str | None = None
    keys: int = 0
    problems: list[str] = field(default_factory=list)


def request_problems(request: Request) -> list[str]:
    """What is wrong with the command line's names, before anything is contacted."""
    problems = []
    if not _DNS_SUBDOMAIN.match(request.name):
        problems.append(f"--name {request.name!r} is not a lowercase DNS name (a Kubernetes object name)")
    if request.url is not None and not request.url.startswith("https://"):
        problems.append(f"--url {request.url!r} must start with https://")
    if request.subject is not None:
        if not _SUBJECT.match(request.subject):
            problems.append(f"--subject {request.subject!r} is not system:serviceaccount:<namespace>:<name>")
        if not request.stores:
            problems.append("--subject needs at least one --store (a ClusterSecretStore it may read)")
    elif request.stores or request.secrets:
        problems.append("--store and --secret belong to --subject's Authorization; add --subject")
    return problems


def connect(kubeconfig: Path | None, context: str | None) -> tuple[ApiClient, ClusterAccess]:
    """A client with the kubeconfig's credentials, and the API server URL and CA of ``context``.

    Without ``kubeconfig``, the client finds one as kubectl does: ``$KUBECONFIG``, else ``~/.kube/config``.
    """
    from kubernetes import config as kube_config  # noqa: PLC0415 - keeps --help fast
    from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

    if kubeconfig is not None:
        where, config_file = f"--kubeconfig {kubeconfig}", str(kubeconfig)
        if not kubeconfig.is_file():
            raise ConfigurationError([f"{where}: no such file"])
    elif os.environ.get("KUBECONFIG"):
        # A list of files (path-separated) is merged by the client, as kubectl merges it.
        where, config_file = "$KUBECONFIG", os.environ["KUBECONFIG"]
    else:
        where, config_file = "~/.kube/config", str(Path.home() / ".kube" / "config")
    try:
        api = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=context
        )
    except (ConfigException, OSError, ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigurationError([f"{where}: {_first_line(exc)}"]) from None
    try:
        return api, _cluster_access(api.configuration, where)
    except ConfigurationError:
        api.close()
        raise


def _cluster_access(configuration: Any, where: str) -> ClusterAccess:
    server = str(configuration.host or "").rstrip("/")
    if not server.startswith("https://"):
        raise ConfigurationError([f"{where}: the cluster's server is not https://"])
    if not configuration.verify_ssl:
        raise ConfigurationError(
            [
                f"{where}: the cluster skips TLS verification; the federation server "
                "needs the cluster's CA, so use a kubeconfig that names it"
            ]
        )
    if not configuration.ssl_ca_cert:
        return ClusterAccess(server, None)
    # The client writes certificate-authority-data to a file: both forms end up as a path here.
    ca_pem = Path(configuration.ssl_ca_cert).read_text(encoding="ascii").strip() + "\n"
    if "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ConfigurationError([f"{where}: the cluster's CA is not a PEM certificate"])
    return ClusterAccess(server, ca_pem)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_discovery(api: ApiClient, findings: Findings) -> None:
    """Ask for the discovery document with the kubeconfig's own credentials; fill in issuer and jwks_uri."""
    try:
        discovery = KubeApi(api).get(DISCOVERY_PATH)
    except KubeApiError as exc:
        if exc.status:
            findings.problems.append(
                f"{DISCOVERY_PATH}: the API server answered {exc.status} to the kubeconfig's user"
            )
        else:
            findings.problems.append(f"{DISCOVERY_PATH}: cannot reach the API server ({exc})")
        return
    issuer = discovery.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        findings.problems.append(f"{DISCOVERY_PATH}: not an OpenID discovery document (no issuer)")
        return
    findings.issuer = issuer
    jwks_uri = discovery.get("jwks_uri")
    findings.jwks_uri = jwks_uri if isinstance(jwks_uri, str) else None


def check_anonymous_jwks(access: ClusterAccess, findings: Findings) -> None:
    """Fetch ``{server}/openid/v1/jwks`` as the federation server will: no credentials, only the CA."""
    url = access.server + JWKS_PATH
    try:
        answer = pinned_request(
            "GET",
            url,
            ca_bundle=access.ca_pem,
            headers={"Accept": JWKS_ACCEPT},
            settings=Settings(),
            max_bytes=MAX_DOCUMENT_BYTES,
        )
    except PinnedRequestError as exc:
        findings.problems.append(f"anonymous GET {url} failed: {exc}")
        return
    if answer.status == 401:
        findings.problems.append(
            f"anonymous GET {url} answered 401: the API server does not accept anonymous requests "
            "(--anonymous-auth=false); give the KubernetesFederation a spec.tokenSecretRef with a token "
            f"that may read the JWKS (ClusterRole {DISCOVERY_ROLE})"
        )
        return
    if answer.status == 403:
        findings.problems.append(
            f"anonymous GET {url} answered 403: bind ClusterRole {DISCOVERY_ROLE} to group "
            f"system:unauthenticated on the client cluster: {ANONYMOUS_BINDING_COMMAND}"
        )
        return
    if answer.status != 200:
        findings.problems.append(f"anonymous GET {url} answered {answer.status}")
        return
    try:
        keys = json.loads(answer.body)["keys"]
    except (ValueError, KeyError, TypeError):
        findings.problems.append(f"anonymous GET {url}: the answer is not a JWKS (no keys)")
        return
    if not isinstance(keys, list) or not keys:
        findings.problems.append(f"anonymous GET {url}: the JWKS holds no keys")
        return
    findings.keys = len(keys)


def manifests(request: Request, access: ClusterAccess, issuer: str) -> list[dict[str, Any]]:
    """The KubernetesFederation, and the Authorization when a subject was given."""
    spec: dict[str, Any] = {"url": request.url or access.server, "issuer": issuer}
    if access.ca_pem:
        spec["caBundle"] = access.ca_pem
    if request.audiences:
        spec["audiences"] = list(request.audiences)
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": FEDERATION_API_VERSION,
            "kind": "KubernetesFederation",
            "metadata": {"name": request.name},
            "spec": spec,
        }
    ]
    if request.subject:
        grant: dict[str, Any] = {
            "federationRef": {"kind": "KubernetesFederation", "name": request.name},
            "subject": {"oidc": {"issuer": issuer, "subject": request.subject}},
            "allowedClusterSecretStores": list(request.stores),
        }
        if request.secrets:
            grant["allowedSecrets"] = list(request.secrets)
        documents.append(
            {
                "apiVersion": AUTHORIZATION_API_VERSION,
                "kind": "Authorization",
                "metadata": {"name": authorization_name(request.name, request.subject)},
                "spec": grant,
            }
        )
    return documents


def authorization_name(federation: str, subject: str) -> str:
    """``<federation>-<namespace>-<serviceaccount>``, cut to the 253 characters of an object name."""
    _, _, namespace, account = subject.split(":", 3)
    return f"{federation}-{namespace}-{account}"[:253].rstrip("-.")


def to_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """Documents as one multi-document YAML stream, CA in block style so that it stays readable."""
    return yaml.dump_all(documents, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)


class _BlockDumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def register(kubeconfig: Path | None, context: str | None, request: Request) -> tuple[str | None, Findings]:
    """The manifests as YAML (None when the cluster cannot be registered as it is) and what was found.

    Raises :class:`ConfigurationError` when the command line or the kubeconfig is unusable.
    """
    problems = request_problems(request)
    if problems:
        raise ConfigurationError(problems)
    api, access = connect(kubeconfig, context)
    findings = Findings()
    try:
        read_discovery(api, findings)
    finally:
        api.close()  # type: ignore[no-untyped-call]
    check_anonymous_jwks(access, findings)
    if findings.problems or findings.issuer is None:
        return None, findings
    return to_yaml(manifests(request, access, findings.issuer)), findings
