"""Manifest changes take effect within seconds; a broken directory never replaces the good configuration."""

from __future__ import annotations

import time
from pathlib import Path

from federation.app import create_app, stop_app
from federation.settings import Settings
from tests.federation.helpers_requests import get, metric_value, post_secrets
from tests.helpers_stack import FederationStack, authorization


def _wait_for_status(stack: FederationStack, token: str, status: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if post_secrets(stack, token).status_code == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no {status} within {timeout} s")


def test_deleting_the_authorization_revokes_access_within_5_seconds(
    federation_stack: FederationStack,
) -> None:
    stack = federation_stack
    token = stack.mint()
    assert post_secrets(stack, token).status_code == 200
    stack.remove("allow-alpha-monitoring.yaml")
    assert _wait_for_status(stack, token, 403, timeout=5.0) < 5.0
    assert get(stack, "/readyz").status_code == 200


def test_a_new_authorization_grants_access_without_a_restart(federation_stack: FederationStack) -> None:
    stack = federation_stack
    token = stack.mint(service_account="grafana")
    assert post_secrets(stack, token).status_code == 403
    stack.write(
        "allow-grafana.yaml", authorization("allow-grafana", "system:serviceaccount:monitoring:grafana")
    )
    assert _wait_for_status(stack, token, 200, timeout=5.0) < 5.0


def test_a_broken_manifest_keeps_the_last_good_configuration(federation_stack: FederationStack) -> None:
    stack = federation_stack
    token = stack.mint()
    since = stack.reload_count()
    (stack.manifests_dir / "broken.yaml").write_text("kind: [unclosed\n  - : :\n", encoding="utf-8")
    # In the same change the grant disappears: nothing of a rejected directory may be applied.
    stack.remove("allow-alpha-monitoring.yaml")
    stack.wait_for_reload(since)
    time.sleep(0.3)  # a further poll, to be sure the rejection is not followed by a partial load
    assert post_secrets(stack, token).status_code == 200
    assert get(stack, "/readyz").status_code == 200
    assert get(stack, "/readyz").json() == {"status": "ready"}
    metrics = get(stack, "/metrics").text
    assert metric_value(metrics, "esi_federation_config_reloads_total", {"result": "error"}) >= 1


def test_a_manifest_with_a_wrong_shape_is_rejected_as_a_whole(federation_stack: FederationStack) -> None:
    stack = federation_stack
    token = stack.mint()
    errors_before = metric_value(
        get(stack, "/metrics").text, "esi_federation_config_reloads_total", {"result": "error"}
    )
    since = stack.reload_count()
    bad = authorization("allow-everyone", "system:serviceaccount:monitoring:grafana")
    bad["spec"]["allowedClusterSecretStores"] = "vault-prod"  # a string, not a list
    stack.write("allow-everyone.yaml", bad)
    stack.wait_for_reload(since)
    errors_after = metric_value(
        get(stack, "/metrics").text, "esi_federation_config_reloads_total", {"result": "error"}
    )
    assert errors_after == errors_before + 1
    assert post_secrets(stack, stack.mint(service_account="grafana")).status_code == 403
    assert post_secrets(stack, token).status_code == 200


def test_fixing_the_broken_file_applies_the_pending_change(federation_stack: FederationStack) -> None:
    stack = federation_stack
    token = stack.mint()
    since = stack.reload_count()
    (stack.manifests_dir / "broken.yaml").write_text("{{{", encoding="utf-8")
    stack.remove("allow-alpha-monitoring.yaml")
    stack.wait_for_reload(since)
    assert post_secrets(stack, token).status_code == 200
    stack.remove("broken.yaml")
    assert _wait_for_status(stack, token, 403, timeout=5.0) < 5.0


def test_readyz_is_503_until_a_first_configuration_loads(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "broken.yaml").write_text("kind: [\n", encoding="utf-8")
    app = create_app(Settings(manifests_dir=manifests, reload_interval=0.1, insecure_http=True))
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").get_json() == {"status": "loading"}
        (manifests / "broken.yaml").unlink()
        deadline = time.monotonic() + 5
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/readyz").status_code == 200
    finally:
        stop_app(app)
