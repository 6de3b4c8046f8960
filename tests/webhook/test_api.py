"""The HTTP layer: status codes, uid echo, exclusions, metrics, health and the logs."""

from __future__ import annotations

import json
import logging

import pytest
from flask.testing import FlaskClient

from tests.webhook.helpers_review import decoded_patch, make_settings, post_review, review
from tests.webhook.helpers_shapes import ENV, FILES, P, container, pod, seed_pod
from webhook.app import create_app
from webhook.logs import JsonFormatter


def test_an_injected_pod_gets_a_base64_json_patch_and_its_uid_back(client: FlaskClient) -> None:
    document = review(seed_pod())
    response = post_review(client, document)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == document["request"]["uid"]
    assert body["response"]["allowed"] is True
    assert decoded_patch(body)


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "esi-system"])
def test_pods_in_excluded_namespaces_pass_untouched(client: FlaskClient, namespace: str) -> None:
    document = review(pod(FILES), namespace=namespace)
    body = post_review(client, document).get_json()
    assert body["response"] == {"uid": document["request"]["uid"], "allowed": True}


@pytest.mark.parametrize(
    "request_fields",
    [
        {"operation": "UPDATE"},
        {"kind": {"group": "", "version": "v1", "kind": "Service"}},
        {"kind": {"group": "apps", "version": "v1", "kind": "Pod"}},
    ],
)
def test_anything_but_a_pod_creation_passes_untouched(
    client: FlaskClient, request_fields: dict[str, object]
) -> None:
    body = post_review(client, review(pod(FILES), **request_fields)).get_json()
    assert body["response"]["allowed"] is True
    assert "patch" not in body["response"]


def test_a_pod_that_did_not_opt_in_passes_untouched(client: FlaskClient) -> None:
    for found in ({}, {P + "inject": "false"}, {"other": "x"}):
        body = post_review(client, review(pod(found))).get_json()
        assert body["response"]["allowed"] is True
        assert "patch" not in body["response"]


def test_a_pod_without_metadata_or_annotations_passes_untouched(client: FlaskClient) -> None:
    bare = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "image": "b"}]}}
    body = post_review(client, review(bare)).get_json()
    assert body["response"]["allowed"] is True


def test_a_refused_pod_gets_403_in_the_status_and_its_uid(client: FlaskClient) -> None:
    document = review(pod({**FILES, P + "file-mode": "x"}))
    body = post_review(client, document).get_json()["response"]
    assert body["uid"] == document["request"]["uid"]
    assert body["allowed"] is False
    assert body["status"]["code"] == 403


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {}}}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 5}}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_a_malformed_review_gets_400(client: FlaskClient, body: bytes) -> None:
    response = client.post("/mutate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.get_json()


@pytest.mark.parametrize(
    "spec",
    [
        None,
        [],
        {"containers": "app"},
        {"containers": []},
        {"containers": [{"image": "x"}]},
        {"containers": [{"name": "app", "command": "/app"}]},
        {"containers": [{"name": "app", "command": ["/app"], "volumeMounts": {}}]},
        {"containers": [{"name": "app", "command": ["/app"]}], "volumes": [None]},
    ],
)
def test_an_opted_in_pod_that_is_not_shaped_like_a_pod_gets_400(client: FlaskClient, spec: object) -> None:
    broken = pod(ENV)
    broken["spec"] = spec
    assert post_review(client, review(broken)).status_code == 400


def test_a_review_without_its_pod_gets_400(client: FlaskClient) -> None:
    assert post_review(client, review(None)).status_code == 400


def test_a_body_over_4_mib_gets_413(client: FlaskClient) -> None:
    document = review(pod({**FILES, "padding": "x" * (4 * 1024 * 1024)}))
    assert post_review(client, document).status_code == 413


def test_only_post_is_accepted_on_mutate(client: FlaskClient) -> None:
    response = client.get("/mutate")
    assert response.status_code == 405
    assert response.is_json


def test_health_and_readiness_answer_200(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_metrics_count_reviews_by_result_and_time_them(client: FlaskClient) -> None:
    post_review(client, review(seed_pod()))
    post_review(client, review(pod({})))
    post_review(client, review(pod({**FILES, P + "file-mode": "x"})))
    client.post("/mutate", data=b"x")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'esi_webhook_reviews_total{result="injected"} 1.0' in text
    assert 'esi_webhook_reviews_total{result="skipped"} 1.0' in text
    assert 'esi_webhook_reviews_total{result="rejected"} 1.0' in text
    assert 'esi_webhook_reviews_total{result="bad_request"} 1.0' in text
    assert "esi_webhook_review_duration_seconds_count 3.0" in text


def test_each_app_has_its_own_metrics() -> None:
    first, second = create_app(make_settings()), create_app(make_settings())
    post_review(first.test_client(), review(seed_pod()))
    text = second.test_client().get("/metrics").get_data(as_text=True)
    assert 'result="injected"' not in text


def test_review_logs_are_json_lines_without_values_or_references(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIBsecret\n-----END CERTIFICATE-----\n"
    app = create_app(make_settings(server_ca_pem=ca))
    caplog.set_level(logging.DEBUG, logger="webhook")
    post_review(app.test_client(), review(seed_pod()))
    post_review(app.test_client(), review(pod({**FILES, P + "file-mode": "x"})))
    lines = [JsonFormatter().format(record) for record in caplog.records]
    parsed = [json.loads(line) for line in lines]
    assert [entry["result"] for entry in parsed if entry.get("event") == "review"] == ["injected", "rejected"]
    assert parsed[0]["pod"] == "prometheus-with-federated-secrets"
    assert P + "file-mode" in parsed[1]["reason"]
    for line in lines:
        assert "\n" not in line
        assert "db-credentials" not in line
        assert "MIIB" not in line


def test_a_pod_marked_injected_gets_an_empty_answer_even_with_bad_annotations(client: FlaskClient) -> None:
    marked = pod({**FILES, P + "status": "injected", P + "file-mode": "not a mode"})
    body = post_review(client, review(marked)).get_json()["response"]
    assert body["allowed"] is True
    assert "patch" not in body


def test_a_large_review_is_never_answered_with_a_patch_many_times_its_size(client: FlaskClient) -> None:
    # Many env-mode annotations repeated into every container (and the commands echoed once): the
    # answer was 16 times the review. Either the patch stays bounded or the pod is refused by reason.
    annotations = dict(ENV)
    for index in range(400):
        annotations[f"{P}env-VAR_{index}_{'X' * 200}"] = f"db-credentials.{'p' * 300}"
    containers = [container(f"c{index}", command=["/bin/app", "x" * 20000]) for index in range(16)]
    document = review(pod(annotations, *containers))
    sent = len(json.dumps(document))
    response = post_review(client, document)
    assert len(response.get_data()) < max(2 * sent, 2 * 1024 * 1024), (sent, len(response.get_data()))
    body = response.get_json()
    if not body["response"]["allowed"]:
        assert "bytes" in body["response"]["status"]["message"]
