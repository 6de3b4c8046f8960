"""Start and stop a real etcd + kube-apiserver on 127.0.0.1 (``python -m hack.kube up|down``).

Everything a plane needs lives in its directory: the CA and certificates (``ca.crt`` is the API
server's CA, which also signs the admin client certificate), the ServiceAccount signing keys, etcd's
data, the logs, ``kubeconfig`` (admin) and ``plane.json`` (ports, process ids, keys in use), which is
how ``down`` finds what ``up`` started.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hack.certs import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, create_ca, write_file
from hack.kube.builder import BuildInfo, find_built, read_info
from hack.ports import free_port

ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 90.0  # two shared cores, several helpers: an API server may take half a minute here
STOP_TIMEOUT = 15.0
ADMIN_USER = "esi-test-admin"


class PlaneError(Exception):
    """The control plane cannot be started, reached or stopped; the message says where to look."""


class MissingBinaries(PlaneError):
    """No built kube-apiserver/etcd in the cache: ``python -m hack.kube build`` makes them."""


class ControlPlane:
    """One etcd and one kube-apiserver, both on loopback, rooted in ``directory``."""

    def __init__(self, directory: Path, binaries: Path | None = None, extra_args: Sequence[str] = ()) -> None:
        self.directory = directory.resolve()
        found = binaries or find_built()
        if found is None:
            raise MissingBinaries(
                "no kube-apiserver/etcd built yet: run `python -m hack.kube build` (minutes, once)"
            )
        self.binaries = found
        self.info: BuildInfo = read_info(found)
        self.extra_args = list(extra_args)
        self.state: dict[str, Any] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # What tests and helpers use.
    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` of the API server."""
        return f"https://127.0.0.1:{self.state['apiserver_port']}"

    @property
    def issuer(self) -> str:
        """The ServiceAccount token issuer (``iss``) this API server signs with."""
        return ISSUER

    @property
    def version(self) -> str:
        """The Kubernetes version, e.g. ``v1.37.2``."""
        return f"v{self.info.kubernetes}"

    @property
    def minor(self) -> int:
        """The Kubernetes minor version (37 for v1.37.2): what version-gated tests compare."""
        return int(self.info.kubernetes.split(".")[1])

    @property
    def ca_file(self) -> Path:
        """The API server's CA certificate (also the caBundle a KubernetesFederation needs)."""
        return self.directory / "ca.crt"

    @property
    def ca_pem(self) -> str:
        """The API server's CA certificate, PEM text."""
        return self.ca_file.read_text(encoding="ascii")

    @property
    def kubeconfig(self) -> Path:
        """An admin kubeconfig (client certificate in group system:masters)."""
        return self.directory / "kubeconfig"

    @property
    def admin_cert(self) -> tuple[str, str]:
        """(certificate file, key file) of the admin client certificate, as ``requests`` takes them."""
        return (str(self.directory / "admin.crt"), str(self.directory / "admin.key"))

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback)."""
        return f"http://127.0.0.1:{self.state['etcd_port']}"

    # Life cycle.
    def start(self) -> ControlPlane:
        """Make keys and certificates, start etcd and the API server, wait until ready, bootstrap."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        self.state = {
            "etcd_port": free_port(),
            "etcd_peer_port": free_port(),
            "apiserver_port": free_port(),
            "keys": [self._new_signing_key(0)],
            "pids": {},
            "version": self.version,
        }
        try:
            self._start_etcd()
            self._start_apiserver()
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the API server, then etcd, by the process ids this plane recorded."""
        for name in ("kube-apiserver", "etcd"):
            self._stop(name)

    def restart_apiserver(self) -> None:
        """Stop and start the API server on the same port with the same etcd (and wait until ready)."""
        self._stop("kube-apiserver")
        self._start_apiserver()

    def rotate_signing_key(self) -> None:
        """Sign with a new key from now on; the old public keys stay listed (both verify)."""
        self.state["keys"].append(self._new_signing_key(len(self.state["keys"])))
        self.restart_apiserver()

    def retire_old_keys(self) -> None:
        """List only the current signing key: tokens signed with older keys no longer verify."""
        self.state["keys"] = self.state["keys"][-1:]
        self.restart_apiserver()

    @classmethod
    def attach(cls, directory: Path) -> ControlPlane:
        """The plane ``up`` started in ``directory`` (read from its ``plane.json``)."""
        state_file = directory / "plane.json"
        if not state_file.is_file():
            raise PlaneError(f"no control plane was started in {directory} (no plane.json)")
        state = json.loads(state_file.read_text(encoding="utf-8"))
        plane = cls(directory, Path(state["binaries"]))
        plane.state = state
        return plane

    # Internals.
    def _make_pki(self) -> None:
        ca = create_ca("esi-federation test kube-apiserver CA")
        write_file(self.directory / "ca.crt", ca.cert_pem, PUBLIC_FILE_MODE)
        serving = ca.issue(
            [
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
        )
        write_file(self.directory / "apiserver.crt", serving.cert_pem, PUBLIC_FILE_MODE)
        write_file(self.directory / "apiserver.key", serving.key_pem, PRIVATE_FILE_MODE)
        admin = ca.issue([], common_name=ADMIN_USER, client=True, organizations=["system:masters"])
        write_file(self.directory / "admin.crt", admin.cert_pem, PUBLIC_FILE_MODE)
        write_file(self.directory / "admin.key", admin.key_pem, PRIVATE_FILE_MODE)

    def _new_signing_key(self, index: int) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys = self.directory / "sa-keys"
        keys.mkdir(exist_ok=True)
        name = f"sa-{index}"
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_file(keys / f"{name}.key", private, PRIVATE_FILE_MODE)
        write_file(keys / f"{name}.pub", public, PUBLIC_FILE_MODE)
        return name

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.state['etcd_port']}"
        peer = f"http://127.0.0.1:{self.state['etcd_peer_port']}"
        args = [
            "--name=esi-test",
            f"--data-dir={self.directory / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=esi-test={peer}",
            "--log-level=warn",
        ]
        if self.info.etcd.split(".")[:2] != ["3", "4"]:
            # Test data is thrown away: fsync costs seconds per write burst on a busy disk.
            args.append("--unsafe-no-fsync")
        self._spawn("etcd", args)
        self._wait(f"{client}/health", "etcd", tls=False)

    def _apiserver_args(self) -> list[str]:
        keys = self.directory / "sa-keys"
        args = [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.state['apiserver_port']}",
            f"--tls-cert-file={self.directory / 'apiserver.crt'}",
            f"--tls-private-key-file={self.directory / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            f"--cert-dir={self.directory / 'apiserver-certs'}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-signing-key-file={keys / (self.state['keys'][-1] + '.key')}",
            *(f"--service-account-key-file={keys / (name + '.pub')}" for name in self.state["keys"]),
            f"--api-audiences={ISSUER}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=true",
            "--service-cluster-ip-range=10.0.0.0/24",
            # Nobody answers on the advertised address's endpoints: no reconciler complaining about it.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]
        if self.minor < 24:
            args.append("--insecure-port=0")  # 1.20 otherwise also serves plain HTTP on 8080
        return args + self.extra_args

    def _start_apiserver(self) -> None:
        self._spawn("kube-apiserver", self._apiserver_args())
        self._write_kubeconfig()
        self._wait(f"{self.url}/readyz", "kube-apiserver", tls=True)

    def _write_kubeconfig(self) -> None:
        cert, key = (Path(name).read_bytes() for name in self.admin_cert)
        user = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
        write_kubeconfig(self.kubeconfig, self.url, self.ca_file, ADMIN_USER, user)

    def _bootstrap(self) -> None:
        # Anonymous OIDC discovery and JWKS, as a cluster that federates its ServiceAccounts allows.
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "esi-test:service-account-issuer-discovery"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:service-account-issuer-discovery",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}
            ],
        }
        self._admin_request(
            "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding, accept=(201, 409)
        )

    def _admin_request(self, method: str, path: str, body: Any, accept: Sequence[int]) -> None:
        request = urllib.request.Request(  # noqa: S310 - https to our own loopback server
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._admin_context(), timeout=30) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status not in accept:
            raise PlaneError(f"{method} {path} answered {status} while bootstrapping the control plane")

    def _admin_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(*self.admin_cert)
        return context

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                [str(self.binaries / name), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                start_new_session=True,  # a Ctrl-C aimed at pytest reaches it through our stop()
            )
        finally:
            log.close()
        self._processes[name] = process
        self.state["pids"][name] = process.pid
        self._save_state()

    def _save_state(self) -> None:
        state = {**self.state, "binaries": str(self.binaries)}
        write_file(self.directory / "plane.json", json.dumps(state, indent=2).encode(), PUBLIC_FILE_MODE)

    def _wait(self, url: str, name: str, tls: bool) -> None:
        context = self._admin_context() if tls else None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            process = self._processes.get(name)
            if process is not None and process.poll() is not None:
                raise PlaneError(f"{name} exited with {process.returncode}; see {self.directory / name}.log")
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or not ready yet
            time.sleep(0.2)
        raise PlaneError(
            f"{name} was not ready within {START_TIMEOUT:.0f} s; see {self.directory / name}.log"
        )

    def _stop(self, name: str) -> None:
        pid = self.state.get("pids", {}).pop(name, None)
        process = self._processes.pop(name, None)
        if pid is None:
            return
        if process is not None:
            _terminate_child(process)
        elif _is_our_process(pid, self.binaries / name):
            _terminate_pid(pid)
        if self.state:
            self._save_state()


def _terminate_child(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _is_our_process(pid: int, binary: Path) -> bool:
    """The pid still runs ``binary`` (a recycled pid belongs to someone else and is left alone)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return argv0.decode(errors="replace") == str(binary)


def _terminate_pid(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return True


def write_kubeconfig(path: Path, url: str, ca_file: Path, user_name: str, user: dict[str, str]) -> Path:
    """Write a 0600 kubeconfig for the API server at ``url`` (trusting ``ca_file``) as ``user``."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "esi-test",
                "cluster": {"server": url, "certificate-authority-data": _b64(ca_file.read_bytes())},
            }
        ],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": "esi-test", "context": {"cluster": "esi-test", "user": user_name}}],
        "current-context": "esi-test",
    }
    write_file(path, yaml.safe_dump(config).encode(), PRIVATE_FILE_MODE)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@contextmanager
def running_plane(directory: Path, extra_args: Sequence[str] = ()) -> Iterator[ControlPlane]:
    """A control plane started in ``directory`` and stopped afterwards."""
    plane = ControlPlane(directory, extra_args=extra_args).start()
    try:
        yield plane
    finally:
        plane.stop()
