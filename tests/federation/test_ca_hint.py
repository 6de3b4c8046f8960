"""The ``caCert`` hint is read in linear time, and only when it can decide between candidates."""

from __future__ import annotations

import time

import pytest

from federation import tokens
from federation.config.model import Federation
from federation.tokens import Hints, certificate_ders, select_candidates
from hack.certs import create_ca

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("marker", ["-----BEGIN CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_repeated_begin_markers_cost_linear_time(marker: str) -> None:
    hostile = marker * (1024 * 1024 // len(marker))  # 1 MiB, far past any cap: the parser alone is timed
    started = time.perf_counter()
    assert certificate_ders(hostile) == frozenset()
    assert time.perf_counter() - started < 1.0


def test_every_block_of_a_bundle_is_read() -> None:
    first, second = create_ca("first").cert_pem.decode(), create_ca("second").cert_pem.decode()
    assert len(certificate_ders(first + "text between\n" + second)) == 2
    assert len(certificate_ders(first + "-----BEGIN CERTIFICATE-----\nno end")) == 1


def test_the_hint_is_not_parsed_when_one_candidate_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    monkeypatch.setattr(tokens, "certificate_ders", lambda text: parsed.append(text) or frozenset())
    alpha, beta = (Federation(name=n, url=f"https://{n}.example", issuer=ISSUER) for n in ("alpha", "beta"))
    hint = Hints(cluster="alpha", ca_cert="-----BEGIN CERTIFICATE-----")
    assert select_candidates([alpha, beta], alpha.issuer, hint) == [alpha]
    assert parsed == []
    select_candidates([alpha, beta], alpha.issuer, Hints(ca_cert="x"))
    assert parsed
