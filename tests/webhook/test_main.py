"""``esi-webhook mutate`` offline, the flags, their environment defaults, and create_app() from the env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.webhook.helpers_review import CLUSTER, SERVER_URL, apply, assert_valid_pod
from tests.webhook.helpers_shapes import FILES, SEED_POD_FILE, P, pod
from webhook.app import create_app
from webhook.main import main

CONFIG = ["--cluster-name", CLUSTER, "--server-url", SERVER_URL]


def write_pod(tmp_path: Path, document: object) -> str:
    """Write a manifest and return its path."""
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_mutate_prints_the_mutated_seed_pod_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mutate", "-f", str(SEED_POD_FILE), *CONFIG]) == 0
    mutated = yaml.safe_load(capsys.readouterr().out)
    assert_valid_pod(mutated)
    assert mutated["metadata"]["annotations"][P + "status"] == "injected"
    assert mutated["spec"]["initContainers"][0]["name"] == "esi-init"


def test_mutate_outputs_json_and_the_patch_on_the_same_code_path(capsys: pytest.CaptureFixture[str]) -> None:
    original = yaml.safe_load(SEED_POD_FILE.read_text())
    assert main(["mutate", "-f", str(SEED_POD_FILE), "-o", "json", *CONFIG]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["mutate", "-f", str(SEED_POD_FILE), "-o", "patch", *CONFIG]) == 0
    patch = json.loads(capsys.readouterr().out)
    assert apply(original, patch) == as_json


def test_mutate_of_an_injected_pod_prints_it_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mutate", "-f", str(SEED_POD_FILE), "-o", "json", *CONFIG]) == 0
    once = json.loads(capsys.readouterr().out)
    assert main(["mutate", "-f", write_pod(tmp_path, once), "-o", "patch", *CONFIG]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_mutate_of_a_refused_pod_exits_1_naming_the_annotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_pod(tmp_path, pod({**FILES, P + "init-first": "maybe"}))
    assert main(["mutate", "-f", path, *CONFIG]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert P + "init-first" in captured.err


@pytest.mark.parametrize(
    "content", ["kind: Service\napiVersion: v1\n", "a: [", "kind: Pod\n---\nkind: Pod\n", "", "[1, 2]"]
)
def test_mutate_of_something_that_is_not_one_pod_exits_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(content)
    assert main(["mutate", "-f", str(path), *CONFIG]) == 2


def test_mutate_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["mutate", "-f", str(tmp_path / "absent.yaml"), *CONFIG]) == 2


def test_mutate_without_a_cluster_name_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESI_WEBHOOK_CLUSTER_NAME", raising=False)
    assert main(["mutate", "-f", str(SEED_POD_FILE), "--server-url", SERVER_URL]) == 2


@pytest.mark.parametrize(
    "flags",
    [
        ["--server-url", "http://plain.example.com"],
        ["--server-url", "https://esi.example.com/?token=x"],  # esi-cli would refuse it in every pod
        ["--allowed-server-urls", "https://user@esi.example.com"],
        ["--token-expiration", "60"],
        ["--token-expiration", "ten minutes"],
        ["--init-memory-limit", "lots"],
        ["--init-run-as-user", "0"],
        ["--server-ca-file", "/nonexistent/ca.crt"],
    ],
)
def test_bad_configuration_exits_2(flags: list[str]) -> None:
    assert main(["mutate", "-f", str(SEED_POD_FILE), *CONFIG, *flags]) == 2


def test_a_server_ca_file_is_read_into_the_injected_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert main(["mutate", "-f", str(SEED_POD_FILE), "-o", "json", *CONFIG, "--server-ca-file", str(ca)]) == 0
    init = json.loads(capsys.readouterr().out)["spec"]["initContainers"][0]
    assert {"name": "ESI_SERVER_CA", "value": ca.read_text()} in init["env"]


def test_flags_take_their_defaults_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESI_WEBHOOK_CLUSTER_NAME", "from-env")
    monkeypatch.setenv("ESI_WEBHOOK_SERVER_URL", SERVER_URL)
    monkeypatch.setenv("ESI_WEBHOOK_INIT_IMAGE", "registry.example/esi-init:9")
    monkeypatch.setenv("ESI_WEBHOOK_TOKEN_EXPIRATION", "1h")
    assert main(["mutate", "-f", str(SEED_POD_FILE), "-o", "json"]) == 0
    mutated = json.loads(capsys.readouterr().out)
    init = mutated["spec"]["initContainers"][0]
    assert init["image"] == "registry.example/esi-init:9"
    assert {"name": "ESI_CLUSTER", "value": "from-env"} in init["env"]
    token = mutated["spec"]["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == 3600


def test_the_webhooks_own_namespace_is_excluded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "esi-webhook")
    path = write_pod(tmp_path, pod(FILES))
    assert main(["mutate", "-f", path, "-n", "esi-webhook", "-o", "patch", *CONFIG]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (
        main(["mutate", "-f", path, "-n", "team", "-o", "patch", *CONFIG, "--excluded-namespaces", "a,team"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == []


def test_create_app_without_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESI_WEBHOOK_CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("ESI_WEBHOOK_SERVER_URL", SERVER_URL)
    monkeypatch.setenv("ESI_WEBHOOK_AUDIENCE", "aud-x")
    app = create_app()
    assert app.extensions["esi_webhook"].settings.audience == "aud-x"


SERVE_FLAGS = [
    "--bind",
    "--tls-cert",
    "--tls-key",
    "--server-url",
    "--allowed-server-urls",
    "--server-ca-file",
    "--cluster-name",
    "--audience",
    "--init-image",
    "--token-expiration",
    "--excluded-namespaces",
    "--workers",
    "--threads",
    "--log-level",
    "--init-cpu-request",
    "--init-memory-limit",
]


def test_serve_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in SERVE_FLAGS:
        assert flag in text
    assert "(default: 0.0.0.0:8443)" in text
    assert "(default: esi-federation)" in text
    assert "(default: 600)" in text


def test_mutate_takes_the_same_flags_minus_tls(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["mutate", "--help"])
    text = capsys.readouterr().out
    assert "--tls-cert" not in text
    assert "--bind" not in text
    for flag in SERVE_FLAGS[3:11]:
        assert flag in text


def test_serve_without_tls_files_exits_2() -> None:
    assert main(["serve", *CONFIG, "--bind", "127.0.0.1:0"]) == 2


@pytest.mark.parametrize("document", ["docs/webhook.md", "README.md"])
def test_the_docs_show_the_seed_pod_exactly_as_mutate_prints_it(
    document: str, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = (Path(__file__).parents[2] / document).read_text()
    shown = docs.split("<!-- mutated-seed-pod -->\n```yaml\n", 1)[1].split("```", 1)[0]
    assert main(["mutate", "-f", str(SEED_POD_FILE), *CONFIG]) == 0
    assert capsys.readouterr().out == shown


def test_an_environment_value_outside_a_flags_choices_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESI_WEBHOOK_LOG_LEVEL", "chatty")
    assert main(["mutate", "-f", str(SEED_POD_FILE), *CONFIG]) == 2


def test_a_non_numeric_worker_count_from_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESI_WEBHOOK_WORKERS", "many")
    assert main(["serve", *CONFIG]) == 2


def test_a_server_url_esi_cli_would_refuse_stops_the_webhook_with_esi_cli_s_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--server-url", "https://esi.example.com:0"]

    assert main(["mutate", "-f", str(SEED_POD_FILE), *CONFIG, *flags]) == 2
    assert "server URL 'https://esi.example.com:0' has an invalid port" in capsys.readouterr().err
