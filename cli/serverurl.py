"""The federation server's URL, ``https://HOST[:PORT][/PATH]``: checked and split without ``urllib``.

``urllib.parse`` (with the ``ipaddress`` module it imports) costs about 3 ms of every pod's start, and
esi-cli needs only this one form. It is read strictly: anything a URL parser would have to guess about
(credentials, a query or fragment, spaces, control or non-ASCII characters, backslashes, a bracket
that is not an IPv6 literal) is refused with a message that names the URL, never silently repaired.
"""

from __future__ import annotations

from cli.errors import UsageError

SCHEME = "https://"
DEFAULT_PORT = 443
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_IPV6_CHARACTERS = frozenset("0123456789abcdef:.")
_NOT_IN_A_SERVER_URL = frozenset("?#@\\")


class ServerUrl:
    """A checked server URL: ``host`` (lower case, an IPv6 literal without brackets), ``port``, the
    ``netloc`` for the ``Host`` header, ``path`` without its trailing ``/``, and ``text`` for messages."""

    __slots__ = ("host", "netloc", "path", "port", "text")

    def __init__(self, text: str, host: str, port: int, netloc: str, path: str) -> None:
        self.text = text
        self.host = host
        self.port = port
        self.netloc = netloc
        self.path = path


def split_server_url(text: str) -> ServerUrl:
    """``text`` (surrounding spaces and trailing ``/`` ignored) split into its parts; ``UsageError`` if
    it is not ``https://HOST[:PORT][/PATH]``."""
    url = text.strip().rstrip("/")
    if url[: len(SCHEME)].lower() != SCHEME or len(url) == len(SCHEME):
        raise UsageError(f"server URL {text!r} must be https://HOST[:PORT][/PATH]")
    if any(not " " < character < "\x7f" for character in url):
        raise UsageError(f"server URL {text!r} must be ASCII without spaces or control characters")
    if _NOT_IN_A_SERVER_URL.intersection(url):
        raise UsageError(
            f"server URL {text!r} must not carry credentials, a query, a fragment or a backslash"
        )
    netloc, slash, rest = url[len(SCHEME) :].partition("/")
    host, port_text = _host_and_port(netloc, text)
    port = int(port_text) if port_text.isdigit() else DEFAULT_PORT
    if (port_text and not port_text.isdigit()) or not 0 < port <= 65535:
        raise UsageError(f"server URL {text!r} has an invalid port")
    return ServerUrl(url, host, port, netloc, slash + rest)


def parse_server_url(text: str) -> str:
    """The server URL without a trailing slash; ``UsageError`` unless it is ``https://HOST[:PORT][/PATH]``."""
    return split_server_url(text).text


def _host_and_port(netloc: str, text: str) -> tuple[str, str]:
    if netloc.startswith("["):
        literal, bracket, after = netloc[1:].partition("]")
        host = literal.lower()
        if not bracket or not host or not _IPV6_CHARACTERS.issuperset(host) or ":" not in host:
            raise UsageError(f"server URL {text!r} has an invalid IPv6 address (https://[::1]:8443)")
        if after and not after.startswith(":"):
            raise UsageError(f"server URL {text!r} has an invalid port")
        return host, after[1:]
    host, _, port_text = netloc.partition(":")
    host = host.lower()
    if not host or not _HOST_CHARACTERS.issuperset(host):
        raise UsageError(f"server URL {text!r} must be https://HOST[:PORT][/PATH]")
    return host, port_text
