"""The objects that carry secret values, tokens or private keys never show them in their repr: a repr
reaches logs (``%r``), exception messages and pytest's assertion output."""

from __future__ import annotations

from federation.authz import RequestedItem
from federation.config.model import Configuration, KubeSecret
from federation.generators.issuance import Issued
from federation.generators.model import GeneratorRef
from federation.service import Fetched, Outcome
from federation.stores.kubernetes import RemoteCluster
from federation.stores.shared_reads import Claim
from federation.stores.vault import VaultStore, _Token
from federation.stores.vault_auth import Login

SECRET = "s3cr3t-value-4f1c9e"
KEY_PEM = f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n".encode()
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_no_secret_in_any_repr() -> None:
    item = RequestedItem("vault-prod", "db-credentials", "password")
    secret = KubeSecret("esi-system", "vault-token", {"token": SECRET.encode()})
    holders = [
        secret,
        Configuration(secrets={("esi-system", "vault-token"): secret}),
        Issued(GeneratorRef("apps", "Password", "db"), {"password": SECRET}, None),
        Fetched(item, SECRET),
        Outcome("allowed", value=[Fetched(item, SECRET)], items=[item]),
        Claim("hit", 0.0, 1.0, {"password": SECRET}),
        VaultStore(
            "vault-prod",
            "https://vault.example:8200",
            "secret",
            "v2",
            None,
            None,
            {"Proxy-Authorization": f"Bearer {SECRET}"},
            (CERT_PEM, KEY_PEM),
        ),
        _Token(SECRET, 60.0, True, None),
        Login("cert", "cert", dict, client_cert=(CERT_PEM, KEY_PEM)),
        RemoteCluster("https://10.0.0.1:6443", None, lambda: SECRET, (CERT_PEM, KEY_PEM)),
    ]
    for holder in holders:
        text = repr(holder)
        assert SECRET not in text, type(holder).__name__
        assert "PRIVATE KEY" not in text, type(holder).__name__


def test_the_repr_still_names_what_it_holds() -> None:
    # Hiding the values must not hide which object it is: names and references stay readable.
    text = repr(KubeSecret("esi-system", "vault-token", {"token": SECRET.encode()}))
    assert "esi-system" in text
    assert "vault-token" in text
    assert "item=RequestedItem(store='vault-prod'" in repr(Fetched(RequestedItem("vault-prod", "k"), SECRET))
