"""The server URL reader: the one accepted form, split as urllib would split it; everything else refused."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from cli.errors import UsageError
from cli.serverurl import split_server_url


@pytest.mark.parametrize(
    "url",
    [
        "https://esi-federation.cluster-main.example.com",
        "https://127.0.0.1:8443",
        "HTTPS://Federation.Example:8443/prefix/",
        "  https://federation.example/a/b  ",
        "https://[::1]:8443",
        "https://[2001:DB8::7]/esi",
        "https://federation.example:",
        "https://esi_federation.internal:65535/v%31",
    ],
)
def test_an_accepted_url_is_split_as_urllib_splits_it(url: str) -> None:
    expected = urlsplit(url.strip().rstrip("/"))

    server = split_server_url(url)

    assert server.text == url.strip().rstrip("/")
    assert server.host == expected.hostname
    assert server.port == (expected.port or 443)
    assert server.netloc == expected.netloc
    assert server.path == expected.path.rstrip("/")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://127.0.0.1:8443", "must be https://"),
        ("esi-federation.example.com", "must be https://"),
        ("https://", "must be https://"),
        ("https:///path", "must be https://"),
        ("https://:8443", "must be https://"),
        ("https://user:pw@host", "credentials"),
        ("https://host/?q=1", "a query"),
        ("https://host/#top", "a fragment"),
        ("https://host\\@evil.example", "backslash"),
        ("https://host name", "without spaces"),
        ("https://host\t/x", "control characters"),
        ("https://hôte.example", "ASCII"),
        ("https://host%2e.example", "must be https://"),
        ("https://host:99999", "invalid port"),
        ("https://host:0", "invalid port"),
        ("https://host:1:2", "invalid port"),
        ("https://host:https", "invalid port"),
        ("https://[::1", "invalid IPv6"),
        ("https://[]:8443", "invalid IPv6"),
        ("https://[example.com]", "invalid IPv6"),
        ("https://[::1]x", "invalid port"),
    ],
)
def test_anything_else_is_refused_with_the_url_named(url: str, complaint: str) -> None:
    with pytest.raises(UsageError, match="server URL") as raised:
        split_server_url(url)

    assert complaint in raised.value.message
    assert repr(url) in raised.value.message
