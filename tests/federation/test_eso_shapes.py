"""ESO's and ESI's manifests, as their docs write them: ``esi-federation check`` reports exactly what
serving would refuse, and loads what it serves (one validation path for both).

Each case is a YAML manifest in the style of ESO's documentation, with the problems ``check`` must
print (none: the store is served) and the deprecation warnings it must print.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from federation.config.holder import ConfigHolder
from federation.config.manifests import load_directory
from federation.errors import BadRequest, SecretNotFound, StoreError
from federation.main import main
from federation.metrics import Metrics
from federation.settings import Settings
from federation.stores.base import extract
from federation.stores.registry import StoreRegistry

TOKEN_SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: vault-creds, namespace: external-secrets}
stringData: {token: hvs.example, password: example-password, role-id: example-role}
"""


def _vault(auth: str, extra: str = "") -> str:
    return f"""
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {{name: vault-backend}}
spec:
  provider:
    vault:
      server: "https://vault.example:8200"
      path: secret
      version: v2
{textwrap.indent(textwrap.dedent(extra), "      ")}
      auth:
{textwrap.indent(textwrap.dedent(auth), "        ")}
---
{TOKEN_SECRET}
"""


def _check(
    tmp_path: Path, manifest: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], list[str]]:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "store.yaml").write_text(textwrap.dedent(manifest), encoding="utf-8")
    code = main(["check", "--manifests", str(tmp_path / "m")])
    lines = capsys.readouterr().out.splitlines()
    problems = [line.removeprefix("problem: ") for line in lines if line.startswith("problem: ")]
    warnings = [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]
    return code, problems, warnings


def _served_refusal(tmp_path: Path, store: str) -> str | None:
    """What a request to ``store`` is answered with when its provider is built (None: it is built)."""
    config = load_directory(tmp_path / "m")
    registry = StoreRegistry(Settings())
    try:
        registry.provider(config, store)
    except StoreError as exc:
        return exc.detail
    finally:
        registry.close()
    return None


VAULT_REFUSED = {
    "iam": (
        """
        iam:
          region: eu-west-1
          vaultRole: vault-role
        """,
        "auth.iam (AWS IAM) is not served",
    ),
    "gcp": ("gcp: {role: vault-role, projectID: p}", "auth.gcp (Google Cloud) is not served"),
    "two methods": (
        """
        tokenSecretRef: {name: vault-creds, namespace: external-secrets, key: token}
        appRole:
          path: approle
          roleId: db02de05-fa39-4855-059b-67221c5c2f63
          secretRef: {name: vault-creds, namespace: external-secrets, key: password}
        """,
        "auth names 2 methods (tokenSecretRef, appRole); ESO takes exactly one",
    ),
    "no method": ("namespace: team-a", "auth must name one of"),
    "ldap without username": (
        "ldap: {path: ldap, secretRef: {name: vault-creds, namespace: external-secrets, key: password}}",
        "auth.ldap.username is required",
    ),
    "userPass without secretRef": (
        "userPass: {path: userpass, username: esi}",
        "auth.userPass.secretRef is required",
    ),
    "cert that holds no certificate": (
        """
        cert:
          clientCert: {name: vault-creds, namespace: external-secrets, key: token}
          secretRef: {name: vault-creds, namespace: external-secrets, key: password}
        """,
        "auth.cert.clientCert holds no PEM certificate",
    ),
    "kubernetes serviceAccountRef": (
        """
        kubernetes:
          mountPath: kubernetes
          role: demo
          serviceAccountRef: {name: my-sa, namespace: external-secrets}
        """,
        "auth.kubernetes.serviceAccountRef needs cluster-main's TokenRequest API, which the server asks "
        "only in Kubernetes mode (--kubernetes)",
    ),
    "jwt kubernetesServiceAccountToken": (
        """
        jwt:
          path: jwt
          role: demo
          kubernetesServiceAccountToken:
            serviceAccountRef: {name: my-sa, namespace: external-secrets}
            audiences: [vault]
        """,
        "auth.jwt.kubernetesServiceAccountToken.serviceAccountRef needs cluster-main's TokenRequest API",
    ),
}


@pytest.mark.parametrize(("auth", "message"), VAULT_REFUSED.values(), ids=VAULT_REFUSED.keys())
def test_a_vault_store_that_cannot_be_served_is_reported_by_check_as_serving_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], auth: str, message: str
) -> None:
    code, problems, _ = _check(tmp_path, _vault(auth), capsys)
    assert code == 1
    assert len(problems) == 1, problems
    assert problems[0].startswith("ClusterSecretStore vault-backend: cannot be served: ")
    assert message in problems[0]
    refusal = _served_refusal(tmp_path, "vault-backend")
    assert refusal is not None
    assert refusal in problems[0]


VAULT_SERVED = {
    "token": "tokenSecretRef: {name: vault-creds, namespace: external-secrets, key: token}",
    "appRole": """
        appRole:
          path: approle
          roleRef: {name: vault-creds, namespace: external-secrets, key: role-id}
          secretRef: {name: vault-creds, namespace: external-secrets, key: password}
        """,
    "ldap": """
        ldap:
          path: ldap
          username: esi
          secretRef: {name: vault-creds, namespace: external-secrets, key: password}
        """,
    "userPass": """
        userPass:
          path: userpass
          username: esi
          secretRef: {name: vault-creds, namespace: external-secrets, key: password}
        """,
    "kubernetes with the server's token": "kubernetes: {mountPath: kubernetes, role: demo}",
    "jwt": """
        jwt:
          path: jwt
          role: demo
          secretRef: {name: vault-creds, namespace: external-secrets, key: token}
        """,
}


@pytest.mark.parametrize("auth", VAULT_SERVED.values(), ids=VAULT_SERVED.keys())
def test_a_vault_store_check_accepts_is_built_for_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], auth: str
) -> None:
    code, problems, _ = _check(tmp_path, _vault(auth), capsys)
    assert (code, problems) == (0, [])
    assert _served_refusal(tmp_path, "vault-backend") is None


def test_a_missing_referenced_secret_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = "userPass: {username: esi, secretRef: {name: gone, namespace: external-secrets, key: password}}"
    code, problems, _ = _check(tmp_path, _vault(auth), capsys)
    assert code == 1
    assert problems == [
        "ClusterSecretStore vault-backend: Secret external-secrets/gone key 'password' does not exist"
    ]


# -- ESI's published samples and resources that are not loaded ---------------------------------------

ESI_SAMPLE = """
apiVersion: federation.external-secrets.io/v1alpha1
kind: KubernetesFederation
metadata: {name: client-cluster-alpha}
spec:
  url: https://client-cluster-alpha.example:6443
  jwks: {keys: []}
---
apiVersion: federation.external-secrets.io/v1alpha1
kind: Authorization
metadata: {name: allow-alpha-monitoring}
spec:
  federationRef: {kind: KubernetesFederation, name: client-cluster-alpha}
  subject:
    issuer: https://kubernetes.default.svc.cluster.local
    subject: system:serviceaccount:monitoring:prometheus
  allowedClusterSecretStores: [vault-prod]
---
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: vault-prod}
spec:
  provider:
    fake:
      data: [{key: db-credentials, value: '{"password": "example"}'}]
"""


def test_esis_published_samples_load_with_deprecation_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, problems, warnings = _check(tmp_path, ESI_SAMPLE, capsys)
    assert (code, problems) == (0, [])
    assert warnings == [
        "KubernetesFederation client-cluster-alpha: apiVersion federation.external-secrets.io/v1alpha1 "
        "(ESI's samples) is deprecated for KubernetesFederation; "
        "write identity.federation.external-secrets.io/v1alpha1",
        "Authorization allow-alpha-monitoring: subject {issuer, subject} without oidc (ESI's samples) is "
        "deprecated; write subject.oidc {issuer, subject}",
    ]
    config = load_directory(tmp_path / "m")
    grant = config.grants[0]
    assert (grant.federation, grant.subject) == (
        "client-cluster-alpha",
        "system:serviceaccount:monitoring:prometheus",
    )
    assert set(config.federations) == {"client-cluster-alpha"}


IGNORED = {
    "federation v1alpha2": (
        "apiVersion: identity.federation.external-secrets.io/v1alpha2\nkind: KubernetesFederation\n"
        "metadata: {name: beta}\nspec: {url: 'https://beta.example'}",
        "KubernetesFederation beta: apiVersion 'identity.federation.external-secrets.io/v1alpha2' is not one "
        "this server reads for KubernetesFederation (use identity.federation.external-secrets.io/v1alpha1); "
        "the resource is ignored",
    ),
    "store v1alpha1": (
        "apiVersion: external-secrets.io/v1alpha1\nkind: ClusterSecretStore\nmetadata: {name: old}\n"
        "spec: {provider: {fake: {data: []}}}",
        "ClusterSecretStore old: apiVersion 'external-secrets.io/v1alpha1' is not one this server reads for "
        "ClusterSecretStore (use external-secrets.io/v1 or external-secrets.io/v1beta1); "
        "the resource is ignored",
    ),
    "namespaced SecretStore": (
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: s, namespace: apps}\n"
        "spec: {provider: {fake: {data: []}}}",
        "SecretStore apps/s: a namespaced store is not served",
    ),
    "unknown kind in a known group": (
        "apiVersion: federation.external-secrets.io/v1alpha1\nkind: Authorisation\n"
        "metadata: {name: typo}\nspec: {}",
        "Authorisation typo: kind 'Authorisation' is not one of federation.external-secrets.io/v1alpha1's "
        "kinds this server reads; the resource is ignored",
    ),
}


@pytest.mark.parametrize(("manifest", "problem"), IGNORED.values(), ids=IGNORED.keys())
def test_a_resource_of_our_groups_that_is_not_loaded_is_reported_and_logged(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    manifest: str,
    problem: str,
) -> None:
    code, problems, _ = _check(tmp_path, manifest, capsys)
    assert code == 1
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)
    ConfigHolder(Metrics()).replace(load_directory(tmp_path / "m"))
    ignored = [r for r in caplog.records if r.getMessage() == "resources ignored"]
    assert [r.problems for r in ignored] == [problems]  # type: ignore[attr-defined]


def test_resources_of_other_groups_are_skipped_quietly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
    )
    assert _check(tmp_path, manifest, capsys) == (0, [], [])


SUBJECTS = {
    "no oidc": (
        "subject: {kind: ServiceAccount}",
        "Authorization a: subject.oidc {issuer, subject} is required",
    ),
    "oidc without subject": (
        "subject: {oidc: {issuer: 'https://i'}}",
        "Authorization a: subject.oidc needs subject",
    ),
    "oidc without both": ("subject: {oidc: {}}", "Authorization a: subject.oidc needs issuer and subject"),
    "bad subject": (
        "subject: {oidc: {issuer: 'https://i', subject: prometheus}}",
        "Authorization a: subject.oidc.subject must be system:serviceaccount:<namespace>:<name>, "
        "got 'prometheus'",
    ),
}


@pytest.mark.parametrize(("subject", "problem"), SUBJECTS.values(), ids=SUBJECTS.keys())
def test_a_subject_problem_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], subject: str, problem: str
) -> None:
    manifest = (
        "apiVersion: federation.external-secrets.io/v1alpha1\nkind: Authorization\n"
        "metadata: {name: a}\nspec:\n  federationRef: {kind: KubernetesFederation, name: f}\n"
        f"  {subject}\n  allowedClusterSecretStores: [s]\n"
    )
    assert _check(tmp_path, manifest, capsys) == (1, [problem], [])


# -- the kubernetes provider, ConfigMaps, the fake provider ------------------------------------------

KUBE_ROOT_CA = """
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-root-ca.crt, namespace: external-secrets}
data:
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy
    -----END CERTIFICATE-----
---
apiVersion: v1
kind: Secret
metadata: {name: db-credentials, namespace: apps}
stringData: {password: apps-db-password}
"""


def _kubernetes(provider: str) -> str:
    return f"""
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {{name: k8s-store}}
spec:
  provider:
    kubernetes:
      remoteNamespace: apps
{textwrap.indent(textwrap.dedent(provider), "      ")}
---
{KUBE_ROOT_CA}
"""


KUBERNETES_SERVED = {
    "ESO's in-cluster example (ConfigMap CA, serviceAccount)": """
        server:
          caProvider: {type: ConfigMap, name: kube-root-ca.crt, key: ca.crt, namespace: external-secrets}
        auth:
          serviceAccount: {name: my-store, namespace: external-secrets}
        """,
    "url kubernetes.default": "server: {url: 'https://kubernetes.default.svc', caBundle: Zm9v}",
    "no server": "auth: {token: {bearerToken: {name: db-credentials, namespace: apps, key: password}}}",
}


@pytest.mark.parametrize("provider", KUBERNETES_SERVED.values(), ids=KUBERNETES_SERVED.keys())
def test_a_kubernetes_store_of_cluster_main_is_served_from_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str
) -> None:
    code, problems, _ = _check(tmp_path, _kubernetes(provider), capsys)
    assert (code, problems) == (0, [])
    config = load_directory(tmp_path / "m")
    registry = StoreRegistry(Settings())
    assert registry.provider(config, "k8s-store").read("db-credentials") == {"password": "apps-db-password"}


KUBERNETES_REFUSED = {
    "a remote cluster without auth": (
        "server: {url: 'https://remote-cluster.example:6443', caBundle: Zm9v}",
        "kubernetes store 'k8s-store': reading another cluster (https://remote-cluster.example:6443) needs "
        "auth: token, cert or serviceAccount",
    ),
    "a remote cluster over http": (
        """
        server: {url: 'http://remote-cluster.example:8080'}
        auth: {token: {bearerToken: {name: db-credentials, namespace: apps, key: password}}}
        """,
        "server.url of another cluster must be https://host[:port], got 'http://remote-cluster.example:8080'",
    ),
    "a remote cluster with serviceAccount auth in local mode": (
        """
        server: {url: 'https://remote-cluster.example:6443'}
        auth: {serviceAccount: {name: reader, namespace: apps}}
        """,
        "auth.serviceAccount needs cluster-main's TokenRequest API, which the server asks only in "
        "Kubernetes mode (--kubernetes)",
    ),
    "authRef": (
        "authRef: {name: kubeconfig, namespace: apps, key: config}",
        "authRef (a kubeconfig in a Secret) is not served",
    ),
    "two auth methods": (
        """
        auth:
          serviceAccount: {name: my-store}
          token: {bearerToken: {name: db-credentials, namespace: apps, key: password}}
        """,
        "auth must name at most one of cert, token, serviceAccount (found ['serviceAccount', 'token'])",
    ),
}


@pytest.mark.parametrize(("provider", "message"), KUBERNETES_REFUSED.values(), ids=KUBERNETES_REFUSED.keys())
def test_a_kubernetes_store_that_points_elsewhere_is_refused_by_check_and_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str, message: str
) -> None:
    manifest = _kubernetes(provider) + (
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: kubeconfig, namespace: apps}\n"
        "stringData: {config: x}\n"
    )
    code, problems, _ = _check(tmp_path, manifest, capsys)
    assert code == 1
    assert len(problems) == 1, problems
    assert message in problems[0]
    refusal = _served_refusal(tmp_path, "k8s-store")
    assert refusal is not None
    assert message in refusal


def test_a_configmap_reference_is_read_from_a_configmap_and_named_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider = (
        "server: {caProvider: {type: ConfigMap, name: other-ca, key: ca.crt, namespace: external-secrets}}"
    )
    code, problems, _ = _check(tmp_path, _kubernetes(provider), capsys)
    assert (code, problems) == (
        1,
        ["ClusterSecretStore k8s-store: ConfigMap external-secrets/other-ca key 'ca.crt' does not exist"],
    )


def test_a_configmap_ca_of_a_vault_store_is_read_from_the_configmap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = "caProvider: {type: ConfigMap, name: kube-root-ca.crt, key: ca.crt, namespace: external-secrets}"
    manifest = _vault("tokenSecretRef: {name: vault-creds, namespace: external-secrets, key: token}", ca)
    code, problems, _ = _check(tmp_path, manifest + "---\n" + KUBE_ROOT_CA, capsys)
    assert (code, problems) == (0, [])
    config = load_directory(tmp_path / "m")
    assert (
        config.config_maps[("external-secrets", "kube-root-ca.crt")].data["ca.crt"].startswith(b"-----BEGIN")
    )
    assert ("external-secrets", "kube-root-ca.crt") not in config.secrets


FAKE = """
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data:
      - {key: /foo/bar, value: HELLO1, version: v1}
      - {key: /foo/bar, value: HELLO10, version: v10}
      - {key: /foo/bar, value: HELLO2, version: v2}
      - {key: /foo/baz, value: 'unversioned'}
      - {key: /foo/baz, value: 'versioned', version: v3}
"""


def test_the_fake_provider_answers_the_unversioned_entry_else_the_newest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(tmp_path, FAKE, capsys) == (0, [], [])
    config = load_directory(tmp_path / "m")
    provider = StoreRegistry(Settings()).provider(config, "fake")
    assert (provider.read("/foo/bar"), provider.read("/foo/baz")) == ("HELLO10", "unversioned")


NESTED = """
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data:
      - key: /app/config
        value: '{"db": {"hosts": ["db-0", "db-1"], "port": 5432}, "dotted.name": {"k": "v"}, "a.b": "flat"}'
"""


@pytest.mark.parametrize(
    ("prop", "value"),
    [("db.hosts.1", "db-1"), ("db.port", "5432"), ("dotted\\.name.k", "v"), ("a.b", "flat")],
)
def test_a_property_is_a_gjson_style_path_when_no_field_has_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prop: str, value: str
) -> None:
    assert _check(tmp_path, NESTED, capsys) == (0, [], [])
    config = load_directory(tmp_path / "m")
    data = StoreRegistry(Settings()).provider(config, "fake").read("/app/config")
    assert extract(data, "/app/config", prop) == value


def test_a_gjson_query_is_refused_and_a_missing_path_is_not_found() -> None:
    data = {"db": {"hosts": ["db-0"]}, "config": '{"mode": "json-in-a-string"}'}
    assert extract(data, "k", "config.mode") == "json-in-a-string"
    with pytest.raises(BadRequest, match=r"gjson queries \(\*, \?, #, \|, @, !\) are not supported"):
        extract(data, "k", "db.hosts.#")
    for missing in ("db.hosts.3", "db..hosts", "db.users", "config.mode.deeper"):
        with pytest.raises(SecretNotFound):
            extract(data, "k", missing)


VALUE_MAP = """
apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata: {name: fake}
spec:
  provider:
    fake:
      data:
      - key: /foo/bar
        value: HELLO1
        version: v1
      - key: /foo/baz
        valueMap: {john: doe, jane: roe}
"""


def test_the_fake_providers_older_value_map_is_served_as_a_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(tmp_path, VALUE_MAP, capsys) == (0, [], [])
    config = load_directory(tmp_path / "m")
    data = StoreRegistry(Settings()).provider(config, "fake").read("/foo/baz")
    assert (extract(data, "/foo/baz", "john"), json.loads(extract(data, "/foo/baz", None))) == (
        "doe",
        {"jane": "roe", "john": "doe"},
    )


def test_a_fake_entry_with_both_value_and_value_map_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = VALUE_MAP.replace(
        "valueMap: {john: doe, jane: roe}", "value: x\n        valueMap: {john: doe}"
    )
    code, problems, _ = _check(tmp_path, manifest, capsys)
    assert code == 1
    assert problems == [
        "ClusterSecretStore fake: provider.fake.data must be a list of {key, value | valueMap[, version]}: "
        "a string key, and a string value or a valueMap of strings; the store is skipped"
    ]
