"""What a default install of the federation server's chart runs: its ``serve`` flags and its TLS key type.

The chart is rendered offline with Helm's own Go SDK (``helm-python-sdk``), as ``helm install`` with no
values would render it. The generated certificate names the chart's Service, not 127.0.0.1, so the
benchmark issues a certificate of the same key type for 127.0.0.1: the handshake costs the same.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bench.environment import REPO

CHART = REPO / "charts" / "esi-federation-server"
# Flags the benchmark replaces: the configuration source, the address and the certificate files.
_REPLACED_WITH_VALUE = frozenset({"--bind", "--tls-cert", "--tls-key"})
_REPLACED = frozenset({"serve", "--kubernetes"})


class ChartError(Exception):
    """The chart cannot be rendered here, or renders something the benchmark cannot reproduce."""


@dataclass(frozen=True)
class ChartDefaults:
    """The default install's server flags (without source, address and TLS files) and its key type."""

    serve_flags: tuple[str, ...]
    key_type: str


def chart_defaults(chart_dir: Path = CHART) -> ChartDefaults:
    """Render ``chart_dir`` with its default values; ``ChartError`` if Helm's SDK is missing or fails."""
    try:
        import helm_python  # noqa: PLC0415 - a test dependency; the rest of the benchmark runs without it
    except ImportError as exc:
        raise ChartError("helm-python-sdk is not installed (pip install -e '.[test]')") from exc
    chart = helm_python.Chart.load(str(chart_dir))
    try:
        files = chart.render({}, name="esi", namespace="esi-system", is_install=True, revision=1)
    finally:
        chart.close()
    args: list[str] | None = None
    key_pem: bytes | None = None
    for document in _documents(files):
        if document.get("kind") == "Deployment":
            args = document["spec"]["template"]["spec"]["containers"][0]["args"]
        elif document.get("kind") == "Secret" and "tls.key" in (document.get("data") or {}):
            key_pem = base64.b64decode(document["data"]["tls.key"])
    if args is None or key_pem is None:
        raise ChartError(f"{chart_dir} rendered no Deployment or no generated TLS Secret")
    return ChartDefaults(tuple(_serve_flags(args)), key_type_of(key_pem))


def key_type_of(key_pem: bytes) -> str:
    """``ec-p256`` or ``rsa-<bits>`` for a PEM private key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ec-p256"
    raise ChartError(f"the chart generates a {type(key).__name__}, which the benchmark does not reproduce")


def _serve_flags(args: list[str]) -> Iterator[str]:
    words = iter(args)
    for word in words:
        if word in _REPLACED_WITH_VALUE:
            next(words, None)
        elif word not in _REPLACED:
            yield word


def _documents(files: dict[str, str]) -> Iterator[dict[str, Any]]:
    for path, text in files.items():
        if path.endswith(".yaml"):
            yield from (doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict))
