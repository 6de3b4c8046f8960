"""config/parse.py and ``esi-federation check``: every problem names the resource and the field."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.config.manifests import load_directory
from federation.config.parse import build_configuration
from federation.errors import ConfigurationError
from federation.main import main
from tests.helpers_stack import authorization, fake_store

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "cluster-main"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def _federation(name: str = "alpha", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "identity.federation.external-secrets.io/v1alpha1",
        "kind": "KubernetesFederation",
        "metadata": {"name": name},
        "spec": {"url": f"https://{name}.example:6443", **spec},
    }


def _secret(name: str, namespace: str | None = "external-secrets", **fields: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, **fields}


def _problems(*resources: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        build_configuration(resources, source="test")
    return caught.value.problems


def test_a_good_batch_builds_the_configuration() -> None:
    config = build_configuration(
        [
            _federation(issuer=ISSUER, audiences=["esi-federation"], jwks={"keys": []}),
            authorization("allow", federation="alpha", allowed_secrets=["team-a/*"]),
            fake_store("vault-prod", {"db": {"password": "x"}}),
            _secret("token", data={"token": base64.b64encode(b"abc").decode()}, stringData={"other": "def"}),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
        ],
        source="test",
    )
    assert set(config.federations) == {"alpha"}
    assert config.federations["alpha"].audiences == ("esi-federation",)
    assert config.grants[0].secret_patterns == ("team-a/*",)
    assert config.stores["vault-prod"].kind == "fake"
    assert config.secrets[("external-secrets", "token")].data == {"token": b"abc", "other": b"def"}


def test_the_issuer_defaults_to_the_in_cluster_one() -> None:
    config = build_configuration([_federation()], source="test")
    assert config.federations["alpha"].issuer == ISSUER


def _without(resource: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    target = changed
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return changed


def _with(resource: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


GRANT = authorization("allow", federation="alpha")
STORE = fake_store("vault-prod", {"db": "x"})

BROKEN: dict[str, tuple[dict[str, Any], str, str]] = {
    "federation without url": (_without(_federation(), "spec", "url"), "KubernetesFederation alpha", "url"),
    "federation with http url": (_federation(url="http://alpha:6443"), "KubernetesFederation alpha", "url"),
    "federation with http jwksURL": (
        _federation(jwksURL="http://alpha/keys"),
        "KubernetesFederation alpha",
        "jwksURL",
    ),
    "federation with empty issuer": (_federation(issuer=""), "KubernetesFederation alpha", "issuer"),
    "federation caBundle not PEM": (_federation(caBundle="hello"), "KubernetesFederation alpha", "caBundle"),
    "federation jwks not an object": (_federation(jwks=["k"]), "KubernetesFederation alpha", "jwks"),
    "federation audiences not a list": (
        _federation(audiences="esi-federation"),
        "KubernetesFederation alpha",
        "audiences",
    ),
    "federation tokenSecretRef without namespace": (
        _federation(tokenSecretRef={"name": "t", "key": "token"}),
        "KubernetesFederation alpha",
        "tokenSecretRef.namespace",
    ),
    "federation tokenReview without ref": (
        _federation(tokenReview={}),
        "KubernetesFederation alpha",
        "tokenReview",
    ),
    "federation spec not a mapping": (
        _with(_federation(), "x", "spec"),
        "KubernetesFederation alpha",
        "spec",
    ),
    "federation without name": (
        _without(_federation(), "metadata", "name"),
        "KubernetesFederation",
        "metadata.name",
    ),
    "grant without federationRef": (
        _without(GRANT, "spec", "federationRef"),
        "Authorization allow",
        "federationRef",
    ),
    "grant federationRef of another kind": (
        _with(GRANT, {"kind": "Cluster", "name": "alpha"}, "spec", "federationRef"),
        "Authorization allow",
        "federationRef",
    ),
    "grant without subject": (_without(GRANT, "spec", "subject"), "Authorization allow", "subject.oidc"),
    "grant without issuer": (
        _without(GRANT, "spec", "subject", "oidc", "issuer"),
        "Authorization allow",
        "issuer",
    ),
    "grant with a user subject": (
        _with(GRANT, "user:alice", "spec", "subject", "oidc", "subject"),
        "Authorization allow",
        "subject.oidc.subject",
    ),
    "grant without stores": (
        _without(GRANT, "spec", "allowedClusterSecretStores"),
        "Authorization allow",
        "allowedClusterSecretStores",
    ),
    "grant stores not a list": (
        _with(GRANT, "vault-prod", "spec", "allowedClusterSecretStores"),
        "Authorization allow",
        "allowedClusterSecretStores",
    ),
    "grant allowedSecrets with an empty pattern": (
        _with(GRANT, ["db", ""], "spec", "allowedSecrets"),
        "Authorization allow",
        "allowedSecrets",
    ),
    "grant allowedGenerators not a list": (
        _with(GRANT, "x", "spec", "allowedGenerators"),
        "Authorization allow",
        "allowedGenerators",
    ),
    "secret with bad base64": (
        _secret("t", data={"token": "%%%"}),
        "Secret external-secrets/t",
        "data.token",
    ),
    "secret data not a mapping": (_secret("t", data=["x"]), "Secret external-secrets/t", "data"),
}


# ClusterSecretStores are ESO's objects, often of providers not served here: one that cannot be served
# is skipped and reported (``check`` lists ``ignored`` as problems), never a reason to reject the batch.
UNSERVABLE_STORES: dict[str, tuple[dict[str, Any], str, str]] = {
    "store with two providers": (
        _with(STORE, {"fake": {}, "vault": {}}, "spec", "provider"),
        "ClusterSecretStore vault-prod",
        "provider",
    ),
    "store with an unserved provider": (
        _with(STORE, {"aws": {}}, "spec", "provider"),
        "ClusterSecretStore vault-prod",
        "aws",
    ),
    "fake store with a number value": (
        _with(STORE, {"fake": {"data": [{"key": "k", "value": 5}]}}, "spec", "provider"),
        "ClusterSecretStore vault-prod",
        "provider.fake.data",
    ),
}


@pytest.mark.parametrize(
    ("resource", "where", "field"), UNSERVABLE_STORES.values(), ids=UNSERVABLE_STORES.keys()
)
def test_a_store_that_cannot_be_served_is_skipped_with_its_reason(
    resource: dict[str, Any], where: str, field: str
) -> None:
    config = build_configuration([resource, fake_store("other", {"db": {"password": "x"}})], source="test")
    assert set(config.stores) == {"other"}
    assert any(item.startswith(where) and field in item and "skipped" in item for item in config.ignored)


@pytest.mark.parametrize(("resource", "where", "field"), BROKEN.values(), ids=BROKEN.keys())
def test_every_problem_names_the_resource_and_the_field(
    resource: dict[str, Any], where: str, field: str
) -> None:
    problems = _problems(resource)
    assert any(problem.startswith(where) and field in problem for problem in problems), problems


def test_a_name_defined_twice_is_a_problem() -> None:
    problems = _problems(_federation(), _federation())
    assert problems == ["KubernetesFederation alpha: defined twice"]


def test_every_problem_of_a_batch_is_reported_at_once() -> None:
    problems = _problems(
        _federation(url="http://x"), _without(GRANT, "spec", "federationRef"), _secret("t", data=1)
    )
    assert len(problems) == 3


# -- esi-federation check ---------------------------------------------------------------------------


def _write(directory: Path, *resources: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "all.yaml").write_text(yaml.safe_dump_all(resources), encoding="utf-8")
    return directory


def test_check_passes_on_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--manifests", str(EXAMPLES)]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 federations, 1 authorizations, 1 stores")


def test_check_reports_configurations_that_cannot_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _write(
        tmp_path / "m",
        _federation("alpha", issuer=ISSUER, tokenSecretRef={"name": "gone", "namespace": "ns", "key": "t"}),
        authorization("allow-unknown-store", federation="alpha", stores=["vault-prod", "nowhere"]),
        authorization("allow-unknown-federation", federation="beta"),
        authorization("allow-wrong-issuer", federation="alpha", issuer="https://other.example"),
        STORE,
    )
    assert main(["check", "--manifests", str(directory)]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 4, out
    assert any("Authorization allow-unknown-store" in p and "'nowhere'" in p for p in problems)
    assert any("Authorization allow-unknown-federation" in p and "federationRef" in p for p in problems)
    assert any("Authorization allow-wrong-issuer" in p and "subject.oidc.issuer" in p for p in problems)
    assert any("KubernetesFederation alpha" in p and "tokenSecretRef" in p for p in problems)


def test_check_reports_a_key_published_by_two_federations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hack.sa_tokens import TokenIssuer  # noqa: PLC0415

    jwks = TokenIssuer().jwks()
    directory = _write(tmp_path / "m", _federation("alpha", jwks=jwks), _federation("beta", jwks=jwks))
    assert main(["check", "--manifests", str(directory)]) == 1
    assert "alpha, beta publish the same key" in capsys.readouterr().out


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_check_sees_one_key_written_two_ways_as_shared(
    algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hack.sa_tokens import generate_signing_key  # noqa: PLC0415

    jwk = generate_signing_key(algorithm).public_jwk()
    # The same numbers with a leading zero byte: different JWK text, the same key.
    member = "n" if algorithm == "RS256" else "x"
    padded = {**jwk, member: _b64(b"\0" + _unb64(jwk[member]))}
    assert padded[member] != jwk[member]
    directory = _write(
        tmp_path / "m",
        _federation("alpha", jwks={"keys": [jwk]}),
        _federation("beta", jwks={"keys": [padded]}),
    )
    assert main(["check", "--manifests", str(directory)]) == 1
    out = capsys.readouterr().out
    if algorithm == "RS256":
        assert "alpha, beta publish the same key" in out
    else:
        # A padded EC coordinate is refused by the JWK parser, as a key: beta holds no usable key.
        assert "KubernetesFederation beta" in out
        assert "no usable signing key" in out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_check_reports_bad_yaml_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "m"
    shutil.copytree(EXAMPLES, directory)
    (directory / "zz-broken.yaml").write_text("kind: [\n", encoding="utf-8")
    assert main(["check", "--manifests", str(directory)]) == 1
    assert "problem: zz-broken.yaml" in capsys.readouterr().out


def test_the_check_command_exits_1_with_its_problems_on_stdout(tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", authorization("allow", federation="nobody"))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "esi-federation"), "check", "--manifests", str(directory)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "problem: Authorization allow: federationRef names KubernetesFederation 'nobody'" in done.stdout


def test_a_symlink_out_of_the_manifests_directory_is_refused_without_quoting_it(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("not: [valid yaml: secret-line-of-the-target\n", encoding="utf-8")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "data").mkdir()
    (manifests / "data" / "store.yaml").write_text(
        yaml.safe_dump(fake_store("s", {"k": "v"})), encoding="utf-8"
    )
    (manifests / "inside.yaml").symlink_to(manifests / "data" / "store.yaml")  # as a mounted ConfigMap does
    assert set(load_directory(manifests).stores) == {"s"}
    (manifests / "escape.yaml").symlink_to(outside)
    with pytest.raises(ConfigurationError) as caught:
        load_directory(manifests)
    assert caught.value.problems == [f"escape.yaml: a symbolic link to a file outside {manifests}; not read"]
    assert "secret-line" not in str(caught.value.problems)
