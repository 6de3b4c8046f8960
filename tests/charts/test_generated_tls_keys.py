"""The TLS material a default install generates uses ECDSA P-256 keys: cheap for the server to sign with
in every handshake, and every pod start is a new connection (docs/performance.md)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.charts.helpers_rendering import SERVER_CHART, WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES, render


@pytest.mark.parametrize(
    ("chart_dir", "values"),
    [(WEBHOOK_CHART, WEBHOOK_REQUIRED_VALUES), (SERVER_CHART, {})],
    ids=["webhook", "server"],
)
def test_the_generated_ca_and_certificate_have_p256_keys(chart_dir: Path, values: dict[str, Any]) -> None:
    secret = next(
        obj
        for obj in render(chart_dir, values)
        if obj["kind"] == "Secret" and "tls.key" in obj.get("data", {})
    )
    data = {name: base64.b64decode(value) for name, value in secret["data"].items()}
    key = serialization.load_pem_private_key(data["tls.key"], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key() == key.public_key()
    leaf.verify_directly_issued_by(ca)
