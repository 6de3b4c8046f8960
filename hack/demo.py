"""``make demo``: the README's walkthrough (README.md, "Architecture"), end to end, on this machine.

Every server binds to 127.0.0.0/8 and is stopped again, also on Ctrl-C or SIGTERM. The log is plain
text, one step at a time; any failed step ends the demo with a non-zero exit. No secret value and no
token is ever printed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from hack import interrupts
from hack.certs import create_ca, write_tls_files
from hack.client_issuer import ClientClusterIssuer
from hack.openbao import OpenBao, make_tls
from hack.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEED_POD = ROOT / "examples" / "client-cluster-alpha" / "prometheus-pod.yaml"
CLUSTER = "client-cluster-alpha"
AUDIENCE = "esi-federation"
STEPS = 10


class DemoFailed(Exception):
    """A step did not do what the walkthrough promises; the message says which and why."""


def step(number: int, title: str) -> None:
    """Announce a step."""
    print(f"\n[{number}/{STEPS}] {title}", flush=True)


def say(text: str) -> None:
    """One indented line of a step's output."""
    for line in text.splitlines() or [""]:
        print(f"      {line}", flush=True)


def run(
    argv: Sequence[str], env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command of the demo; raise ``DemoFailed`` with its stderr when it fails and ``check``."""
    result = subprocess.run(
        list(argv), check=False, env=dict(env) if env else None, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise DemoFailed(f"{Path(argv[0]).name} exited {result.returncode}: {result.stderr.strip()[-800:]}")
    return result


def store_secrets(bao: OpenBao) -> str:
    """Write the walkthrough's secrets to KV v2 and return a read-only token for the federation server."""
    client = bao.client()
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(
        path="db-credentials", secret={"username": "prometheus", "password": "pw-" + secrets.token_hex(8)}
    )
    kv.create_or_update_secret(path="api-keys", secret={"service-a-token": "tok-" + secrets.token_hex(8)})
    client.sys.create_or_update_policy(
        "esi-federation-read", 'path "secret/data/*" { capabilities = ["read"] }'
    )
    token: str = client.auth.token.create(policies=["esi-federation-read"], ttl="1h")["auth"]["client_token"]
    return token


def cluster_main_manifests(
    bao: OpenBao, vault_ca: bytes, vault_token: str, issuer: ClientClusterIssuer
) -> dict[str, Any]:
    """cluster-main's resources: vault-prod (Vault, token from a Secret), the federation, the grant."""
    return {
        "vault-token.yaml": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vault-prod-token", "namespace": "esi-system"},
            "stringData": {"token": vault_token},
        },
        "vault-prod.yaml": {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterSecretStore",
            "metadata": {"name": "vault-prod"},
            "spec": {
                "provider": {
                    "vault": {
                        "server": bao.tls_address,
                        "path": "secret",
                        "version": "v2",
                        "caBundle": base64.b64encode(vault_ca).decode(),
                        "auth": {
                            "tokenSecretRef": {
                                "name": "vault-prod-token",
                                "namespace": "esi-system",
                                "key": "token",
                            }
                        },
                    }
                }
            },
        },
        "client-cluster-alpha.yaml": issuer.federation_manifest(CLUSTER, audiences=[AUDIENCE]),
        "allow-alpha-monitoring.yaml": {
            "apiVersion": "federation.external-secrets.io/v1alpha1",
            "kind": "Authorization",
            "metadata": {"name": "allow-alpha-monitoring"},
            "spec": {
                "federationRef": {"kind": "KubernetesFederation", "name": CLUSTER},
                "subject": {
                    "oidc": {
                        "issuer": issuer.issuer,
                        "subject": "system:serviceaccount:monitoring:prometheus-esi-client",
                    }
                },
                "allowedClusterSecretStores": ["vault-prod"],
            },
        },
    }


@contextlib.contextmanager
def federation_server(manifests: Path, work: Path) -> Iterator[tuple[str, Path]]:
    """Run ``esi-federation serve`` over TLS; yield its URL and the CA file that verifies it."""
    ca = create_ca("cluster-main demo CA")
    tls = write_tls_files(work / "federation-tls", ca, ca.issue(["127.0.0.1", "localhost"]))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log_path = work / "federation.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log, interrupts.held():
            process = subprocess.Popen(
                [
                    str(BIN / "esi-federation"),
                    "serve",
                    "--manifests",
                    str(manifests),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--tls-cert",
                    str(tls.cert_file),
                    "--tls-key",
                    str(tls.key_file),
                    "--workers",
                    "1",
                    "--threads",
                    "4",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(url + "/readyz", tls.ca_file, process)
        yield url, tls.ca_file
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(url: str, ca_file: Path, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoFailed(f"esi-federation exited with {process.returncode} before it was ready")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, verify=str(ca_file), timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise DemoFailed(f"{url} did not become ready within {timeout:.0f} s")


def mutate_seed_pod(url: str, server_ca: Path) -> dict[str, Any]:
    """Run ``esi-webhook mutate`` on the seed's pod, print a compact diff, return the mutated pod."""
    result = run(
        [
            str(BIN / "esi-webhook"),
            "mutate",
            "-f",
            str(SEED_POD),
            "-o",
            "yaml",
            "--server-url",
            url,
            "--server-ca-file",
            str(server_ca),
            "--cluster-name",
            CLUSTER,
            "--audience",
            AUDIENCE,
        ]
    )
    mutated: dict[str, Any] = yaml.safe_load(result.stdout)
    say("\n".join(pod_changes(yaml.safe_load(SEED_POD.read_text()), mutated)))
    return mutated


def pod_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """A compact diff of two pods: one line per object the webhook added or changed."""
    lines = [
        f"+ annotation {key}: {value}"
        for key, value in after["metadata"].get("annotations", {}).items()
        if key not in before["metadata"].get("annotations", {})
    ]
    old_volumes = {volume["name"] for volume in before["spec"].get("volumes", [])}
    for volume in after["spec"].get("volumes", []):
        if volume["name"] not in old_volumes:
            kind = next(key for key in volume if key != "name")
            lines.append(
                f"+ volume {volume['name']} ({kind}: {json.dumps(volume[kind], separators=(',', ':'))})"
            )
    old_inits = {c["name"] for c in before["spec"].get("initContainers", [])}
    for init in after["spec"].get("initContainers", []):
        if init["name"] not in old_inits:
            lines.append(f"+ initContainer {init['name']}: {' '.join(init['command'])}; {_mounts(init)}")
            lines.append(f"    env {', '.join(v['name'] for v in init.get('env', []))}")
    old_containers = {c["name"]: c for c in before["spec"]["containers"]}
    for new in after["spec"]["containers"]:
        old = old_containers.get(new["name"], {})
        if new.get("command") != old.get("command"):
            lines.append(f"~ container {new['name']}: command {old.get('command')} -> {new['command']}")
        if new.get("volumeMounts") != old.get("volumeMounts"):
            lines.append(f"~ container {new['name']}: {_mounts(new)}")
        added_env = [v["name"] for v in new.get("env", []) if v not in old.get("env", [])]
        if added_env:
            lines.append(f"~ container {new['name']}: env + {', '.join(added_env)}")
    return lines


def _mounts(container: Mapping[str, Any]) -> str:
    shown = [
        f"{m['name']} at {m['mountPath']}{' (ro)' if m.get('readOnly') else ''}"
        for m in container.get("volumeMounts", [])
    ]
    return "mounts " + ", ".join(shown)


def container(pod: Mapping[str, Any], name: str, kind: str = "containers") -> dict[str, Any]:
    """The container ``name`` of the pod."""
    for candidate in pod["spec"].get(kind, []):
        if candidate["name"] == name:
            return dict(candidate)
    raise DemoFailed(f"the mutated pod has no {kind[:-1]} {name!r}")


def esi_environment(spec: Mapping[str, Any], demo: Walkthrough) -> dict[str, str]:
    """The ESI_* variables the webhook gave a container, with in-pod paths mapped onto the demo's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESI_")}
    given = spec.get("env", [])
    env.update({v["name"]: v["value"] for v in given if v["name"].startswith("ESI_") and "value" in v})
    env["ESI_TOKEN_FILE"], env["ESI_CA_FILE"] = str(demo.token_file), str(demo.client_ca)
    if "ESI_DIR" in env:
        env["ESI_DIR"] = str(demo.secrets_dir)
    # Only the image's self-contained esi-cli installs itself into the esi-bin volume; the venv's cannot.
    env.pop("ESI_BIN_DIR", None)
    return env


def describe_file(path: Path) -> str:
    """``path: N bytes, mode 0440`` — never the content."""
    info = path.stat()
    return f"{path}: {info.st_size} bytes, mode {stat.S_IMODE(info.st_mode):04o}"


STAND_IN = """\
import os
value = os.environ.get("MY_APP_DB_PASSWORD")
state = f"set ({len(value)} characters)" if value else "NOT set"
print(f"prometheus stand-in: MY_APP_DB_PASSWORD is {state}")
"""


class Walkthrough:
    """The walkthrough's steps, sharing what earlier steps started."""

    def __init__(self, work: Path, running: contextlib.ExitStack) -> None:
        self.work = work
        self.running = running
        self.token_file = work / "token"
        self.client_ca = work / "ca.crt"
        self.secrets_dir = work / "etc" / "secrets"

    def run(self) -> None:
        """Steps 1 to 9; step 10 is the ExitStack closing."""
        bao, vault_ca, vault_token = self.start_openbao()
        issuer = self.start_client_cluster()
        manifests = self.write_manifests(bao, vault_ca, vault_token, issuer)
        step(4, "Start the federation server over TLS (esi-federation serve)")
        url, server_ca = self.running.enter_context(federation_server(manifests, self.work))
        say(f"{url} is ready (log: {self.work / 'federation.log'})")
        step(5, "esi-webhook mutate on the seed's prometheus-with-federated-secrets pod")
        pod = mutate_seed_pod(url, server_ca)
        init_env = self.fetch_files(issuer, pod)
        self.exec_app(pod)
        self.show_denial(issuer, init_env)
        step(10, "Stop everything that was started")

    def start_openbao(self) -> tuple[OpenBao, bytes, str]:
        step(1, "Start OpenBao (cluster-main's Vault) and store the walkthrough's secrets")
        directory = self.work / "openbao"
        directory.mkdir()
        vault_tls = make_tls(directory, "openbao")
        bao = self.running.enter_context(_started(OpenBao(directory, tls=vault_tls)))
        vault_token = store_secrets(bao)
        say(
            f"OpenBao {bao.tls_address} (TLS), KV v2 at secret/: db-credentials {{username, password}}, "
            "api-keys {service-a-token}"
        )
        say("a read-only token for the federation server (policy esi-federation-read) goes into a Secret")
        return bao, vault_tls.ca_pem, vault_token

    def start_client_cluster(self) -> ClientClusterIssuer:
        step(2, "Start client-cluster-alpha's API server stand-in (OIDC discovery + JWKS, its own CA)")
        issuer = self.running.enter_context(ClientClusterIssuer(host="127.0.0.2"))
        say(f"{issuer.url} issuer={issuer.issuer}; JWKS at {issuer.jwks_url}")
        self.client_ca.write_text(issuer.ca_pem)
        return issuer

    def write_manifests(self, bao: OpenBao, vault_ca: bytes, token: str, issuer: ClientClusterIssuer) -> Path:
        step(3, "Write cluster-main's manifests: vault-prod, client-cluster-alpha, allow-alpha-monitoring")
        manifests = self.work / "cluster-main"
        manifests.mkdir()
        for filename, document in cluster_main_manifests(bao, vault_ca, token, issuer).items():
            (manifests / filename).write_text(yaml.safe_dump(document, sort_keys=False))
            say(f"{filename}: {document['kind']} {document['metadata']['name']}")
        say(run([str(BIN / "esi-federation"), "check", "--manifests", str(manifests)]).stdout.strip())
        return manifests

    def fetch_files(self, issuer: ClientClusterIssuer, pod: dict[str, Any]) -> dict[str, str]:
        step(6, "Mint a projected token for monitoring/prometheus-esi-client and run esi-init's esi-cli")
        self.write_token(
            issuer.mint("monitoring", "prometheus-esi-client", [AUDIENCE], pod_name=pod["metadata"]["name"])
        )
        self.secrets_dir.mkdir(parents=True)
        init_env = esi_environment(container(pod, "esi-init", "initContainers"), self)
        fetch = run([str(BIN / "esi-cli"), "fetch"], env=init_env)
        say(f"esi-cli fetch: exit {fetch.returncode}")
        step(7, "The file the application reads")
        written = self.secrets_dir / "service-a.token"
        if not written.is_file():
            raise DemoFailed(f"{written} was not written")
        say(describe_file(written))
        return init_env

    def exec_app(self, pod: dict[str, Any]) -> None:
        step(8, "esi-cli exec: the application starts with MY_APP_DB_PASSWORD in its environment")
        stand_in = self.work / "prometheus-stand-in.py"
        stand_in.write_text(STAND_IN)
        app_env = esi_environment(container(pod, "prometheus"), self)
        result = run([str(BIN / "esi-cli"), "exec", "--", sys.executable, str(stand_in)], env=app_env)
        if "is set" not in result.stdout:
            raise DemoFailed("the stand-in did not see MY_APP_DB_PASSWORD")
        say(result.stdout.strip())

    def show_denial(self, issuer: ClientClusterIssuer, init_env: Mapping[str, str]) -> None:
        step(9, "Another ServiceAccount of the same cluster is denied")
        self.write_token(issuer.mint("monitoring", "grafana", [AUDIENCE]))
        denied = run([str(BIN / "esi-cli"), "fetch"], env=init_env, check=False)
        if denied.returncode != 3:
            raise DemoFailed(f"expected exit 3 (denied) for monitoring/grafana, got {denied.returncode}")
        say(f"esi-cli fetch as system:serviceaccount:monitoring:grafana: exit {denied.returncode}")
        say(denied.stderr.strip()[-400:])

    def write_token(self, token: str) -> None:
        self.token_file.write_text(token)
        self.token_file.chmod(0o600)


@contextlib.contextmanager
def _started(bao: OpenBao) -> Iterator[OpenBao]:
    try:
        bao.start()
        yield bao
    finally:
        bao.stop()


def main() -> int:
    """Run the walkthrough; 0 when every step did what it promises."""
    interrupts.install()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="esi-demo-") as work, contextlib.ExitStack() as running:
            Walkthrough(Path(work), running).run()
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", file=sys.stderr)
        return 130
    say(f"all stopped; the walkthrough took {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
