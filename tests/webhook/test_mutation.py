"""What is injected where: containers, env vars, mounts, volumes, order, and the pod-level refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.webhook.helpers_review import OTHER_SERVER_URL, SERVER_URL, apply, make_settings, review
from tests.webhook.helpers_shapes import ENV, FILES, P, container, pod, seed_pod
from webhook.admission import admit
from webhook.reviews import decode
from webhook.settings import Settings

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def inject(pod_object: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The pod as the webhook mutates it; fails the test when the pod is refused."""
    decision = admit(decode(json.dumps(review(pod_object)).encode()), settings or make_settings())
    assert decision.message is None, decision.message
    return apply(pod_object, decision.patch)


def refusal(pod_object: dict[str, Any], settings: Settings | None = None) -> str:
    """The message the webhook refuses the pod with; fails the test when the pod is admitted."""
    decision = admit(decode(json.dumps(review(pod_object)).encode()), settings or make_settings())
    assert decision.result == "rejected"
    assert decision.review["response"]["allowed"] is False
    assert decision.message is not None
    return decision.message


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The item of a Kubernetes list called ``name``."""
    return next(item for item in items if item["name"] == name)


def env_of(item: dict[str, Any]) -> dict[str, str]:
    """A container's env as a name -> value dict."""
    return {variable["name"]: variable["value"] for variable in item.get("env", [])}


def mounts_of(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's volume mounts by volume name."""
    return {mount["name"]: mount for mount in item.get("volumeMounts", [])}


def test_the_seed_pod_gets_esi_init_configured_by_env_vars() -> None:
    mutated = inject(seed_pod())
    init = by_name(mutated["spec"]["initContainers"], "esi-init")
    assert init["command"] == ["esi-cli", "fetch"]
    assert env_of(init) == {
        "ESI_SERVER": SERVER_URL,
        "ESI_TOKEN_FILE": "/var/run/secrets/esi/token",
        "ESI_CA_FILE": "/var/run/secrets/esi/ca.crt",
        "ESI_CLUSTER": "client-cluster-alpha",
        "ESI_STORE": "vault-prod",
        "ESI_FILES": "service-a.token=api-keys.service-a-token",
        "ESI_ENV": "MY_APP_DB_PASSWORD=db-credentials.password",
        "ESI_DIR": "/etc/secrets",
        "ESI_FILE_MODE": "0440",
        "ESI_BIN_DIR": "/esi/bin",
    }
    assert mounts_of(init) == {
        "esi-secrets": {"name": "esi-secrets", "mountPath": "/etc/secrets"},
        "esi-token": {"name": "esi-token", "mountPath": "/var/run/secrets/esi", "readOnly": True},
        "esi-bin": {"name": "esi-bin", "mountPath": "/esi/bin"},
    }


def test_esi_init_is_hardened_with_small_resources() -> None:
    init = by_name(inject(seed_pod())["spec"]["initContainers"], "esi-init")
    assert init["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 65532,
        "runAsGroup": 65532,
    }
    assert init["resources"] == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }


def test_the_seed_pods_app_container_is_wrapped_by_esi_cli_exec() -> None:
    prometheus = inject(seed_pod())["spec"]["containers"][0]
    assert prometheus["command"] == ["/esi/bin/esi-cli", "exec", "--", "/bin/prometheus"]
    assert prometheus["args"] == ["--config.file=/etc/prometheus/prometheus.yml"]
    assert env_of(prometheus) == {
        "ESI_SERVER": SERVER_URL,
        "ESI_TOKEN_FILE": "/var/run/secrets/esi/token",
        "ESI_CA_FILE": "/var/run/secrets/esi/ca.crt",
        "ESI_CLUSTER": "client-cluster-alpha",
        "ESI_STORE": "vault-prod",
        "ESI_ENV": "MY_APP_DB_PASSWORD=db-credentials.password",
    }
    assert all(mount["readOnly"] for mount in prometheus["volumeMounts"])
    assert {name: mount["mountPath"] for name, mount in mounts_of(prometheus).items()} == {
        "esi-secrets": "/etc/secrets",
        "esi-token": "/var/run/secrets/esi",
        "esi-bin": "/esi/bin",
    }


def test_the_injected_volumes_are_memory_secrets_a_bound_token_and_the_bin_dir() -> None:
    volumes = inject(seed_pod(), make_settings(audience="alpha-aud", token_expiration=900))["spec"]["volumes"]
    assert by_name(volumes, "esi-secrets")["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Mi"}
    sources = by_name(volumes, "esi-token")["projected"]["sources"]
    assert sources == [
        {"serviceAccountToken": {"audience": "alpha-aud", "expirationSeconds": 900, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ]
    assert "emptyDir" in by_name(volumes, "esi-bin")


def test_file_mode_keeps_the_token_and_the_esi_env_out_of_the_app_container() -> None:
    mutated = inject(pod(FILES))
    app = mutated["spec"]["containers"][0]
    assert app["command"] == ["/app"]
    assert "env" not in app
    assert mounts_of(app) == {
        "esi-secrets": {"name": "esi-secrets", "mountPath": "/etc/secrets", "readOnly": True}
    }
    assert [volume["name"] for volume in mutated["spec"]["volumes"]] == ["esi-secrets", "esi-token"]
    init = by_name(mutated["spec"]["initContainers"], "esi-init")
    assert "ESI_ENV" not in env_of(init)
    assert "ESI_BIN_DIR" not in env_of(init)


def test_esi_init_runs_after_the_pods_own_init_containers_by_default() -> None:
    mutated = inject(pod(FILES, initContainers=[container("migrate"), container("warm")]))
    assert [item["name"] for item in mutated["spec"]["initContainers"]] == ["migrate", "warm", "esi-init"]


def test_init_first_puts_esi_init_before_the_pods_own_init_containers() -> None:
    mutated = inject(pod({**FILES, P + "init-first": "true"}, initContainers=[container("migrate")]))
    assert [item["name"] for item in mutated["spec"]["initContainers"]] == ["esi-init", "migrate"]


@pytest.mark.parametrize("init_first", ["true", "false"])
def test_the_refresh_sidecar_comes_right_after_esi_init(init_first: str) -> None:
    annotations = {**FILES, P + "refresh-interval": "5m", P + "init-first": init_first}
    mutated = inject(pod(annotations, initContainers=[container("migrate")]))
    names = [item["name"] for item in mutated["spec"]["initContainers"]]
    assert names.index("esi-refresh") == names.index("esi-init") + 1
    sidecar = by_name(mutated["spec"]["initContainers"], "esi-refresh")
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"] == ["esi-cli", "fetch"]
    assert env_of(sidecar)["ESI_REFRESH_INTERVAL"] == "300s"
    assert env_of(sidecar)["ESI_FILES"] == "token=api-keys.service-a-token"
    assert "restartPolicy" not in by_name(mutated["spec"]["initContainers"], "esi-init")


def test_the_containers_annotation_selects_which_containers_get_secrets() -> None:
    annotations = {**ENV, P + "containers": "worker"}
    mutated = inject(pod(annotations, container("web", command=None), container("worker")))
    web, worker = mutated["spec"]["containers"]
    assert "volumeMounts" not in web
    assert "command" not in web
    assert worker["command"][:3] == ["/esi/bin/esi-cli", "exec", "--"]


def test_references_are_rendered_canonically_one_per_line_in_name_order() -> None:
    annotations = {
        P + "inject": "true",
        P + "file-z": "other:conf#a.b",
        P + "file-a": " store-a:db.password ",
        P + "file-m": "store-b:whole",
    }
    init = by_name(inject(pod(annotations))["spec"]["initContainers"], "esi-init")
    assert env_of(init)["ESI_FILES"] == "a=store-a:db.password\nm=store-b:whole\nz=other:conf#a.b"
    assert "ESI_STORE" not in env_of(init)


def test_a_configured_server_ca_reaches_every_esi_cli() -> None:
    mutated = inject(seed_pod(), make_settings(server_ca_pem=CA_PEM))
    assert env_of(by_name(mutated["spec"]["initContainers"], "esi-init"))["ESI_SERVER_CA"] == CA_PEM
    assert env_of(mutated["spec"]["containers"][0])["ESI_SERVER_CA"] == CA_PEM


def test_an_allowed_server_annotation_is_used() -> None:
    mutated = inject(pod({**FILES, P + "server": OTHER_SERVER_URL}))
    assert env_of(by_name(mutated["spec"]["initContainers"], "esi-init"))["ESI_SERVER"] == OTHER_SERVER_URL


def test_a_server_outside_the_allow_list_is_rejected() -> None:
    message = refusal(pod({**FILES, P + "server": "https://evil.example.com"}))
    assert P + "server" in message
    assert "allow-list" in message


def test_a_pod_without_server_annotation_is_rejected_when_there_is_no_default_server() -> None:
    settings = make_settings(server_url=None)
    assert P + "server" in refusal(pod(FILES), settings)
    assert inject(pod({**FILES, P + "server": OTHER_SERVER_URL}), settings)


def test_env_mode_rejects_a_container_without_command_and_asks_for_it() -> None:
    message = refusal(pod(ENV, container("app", command=None)))
    assert "container app" in message
    assert "command" in message


def test_env_mode_names_every_container_without_command_at_once() -> None:
    message = refusal(
        pod(
            ENV,
            container("app", command=None),
            container("web", command=["/web"]),
            container("log", command=None),
        )
    )
    assert message.startswith("containers app, log: env mode")
    assert "web" not in message.split(":")[0]


@pytest.mark.parametrize(
    ("pod_object", "named"),
    [
        (pod(FILES, volumes=[{"name": "esi-secrets", "emptyDir": {}}]), "volume named esi-secrets"),
        (pod(FILES, volumes=[{"name": "esi-token", "emptyDir": {}}]), "volume named esi-token"),
        (pod(FILES, initContainers=[container("esi-init")]), "container named esi-init"),
        (pod(FILES, container("esi-refresh")), "container named esi-refresh"),
        (
            pod(FILES, container("app", volumeMounts=[{"name": "x", "mountPath": "/etc/secrets"}])),
            "at /etc/secrets",
        ),
        (pod(ENV, container("app", env=[{"name": "ESI_SERVER", "value": "x"}])), "ESI_SERVER"),
        (pod({**FILES, P + "containers": "web,nope"}, container("web")), "no regular container named nope"),
    ],
)
def test_a_conflicting_pod_is_rejected_with_a_clear_message(pod_object: dict[str, Any], named: str) -> None:
    assert named in refusal(pod_object)


def test_a_pod_that_names_its_non_root_user_keeps_it_in_esi_init() -> None:
    mutated = inject(pod(FILES, securityContext={"runAsUser": 1000, "runAsGroup": 2000}))
    context = by_name(mutated["spec"]["initContainers"], "esi-init")["securityContext"]
    assert "runAsUser" not in context
    assert "runAsGroup" not in context


def test_a_pod_running_as_root_still_gets_a_non_root_esi_init() -> None:
    mutated = inject(pod(FILES, securityContext={"runAsUser": 0}))
    context = by_name(mutated["spec"]["initContainers"], "esi-init")["securityContext"]
    assert context["runAsUser"] == 65532
    assert context["runAsNonRoot"] is True


def test_the_status_annotation_path_is_escaped() -> None:
    decision = admit(decode(json.dumps(review(pod(FILES))).encode()), make_settings())
    assert decision.patch[-1] == {
        "op": "add",
        "path": "/metadata/annotations/esi.external-secrets.io~1status",
        "value": "injected",
    }


def test_missing_arrays_are_created_and_existing_ones_appended_to() -> None:
    bare = admit(decode(json.dumps(review(pod(FILES))).encode()), make_settings()).patch
    assert {op["path"] for op in bare} >= {
        "/spec/volumes",
        "/spec/initContainers",
        "/spec/containers/0/volumeMounts",
    }
    full = pod(
        FILES,
        container("app", volumeMounts=[{"name": "d", "mountPath": "/d"}]),
        volumes=[{"name": "d", "emptyDir": {}}],
        initContainers=[container("i")],
    )
    ops = admit(decode(json.dumps(review(full)).encode()), make_settings()).patch
    assert {op["path"] for op in ops if op["op"] == "add"} >= {
        "/spec/volumes/-",
        "/spec/initContainers/-",
        "/spec/containers/0/volumeMounts/-",
    }
    assert not [op for op in ops if op["op"] == "replace"]


def test_server_urls_match_with_or_without_a_trailing_slash() -> None:
    settings = make_settings(
        server_url=SERVER_URL + "/", allowed_server_urls=frozenset({OTHER_SERVER_URL + "/"})
    )
    for url in (SERVER_URL, OTHER_SERVER_URL + "/"):
        mutated = inject(pod({**FILES, P + "server": url}), settings)
        assert env_of(by_name(mutated["spec"]["initContainers"], "esi-init"))["ESI_SERVER"] == url.rstrip("/")
