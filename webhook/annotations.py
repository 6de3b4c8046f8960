"""Every annotation the webhook reads or writes, and ``parse()`` from annotations to an InjectionSpec.

The keys follow vault-k8s's habit: one documented constant each, so the docs, the parser and the tests
agree. Parsing is pure and checks everything that can be checked without the pod's containers; every
error names the annotation to fix.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cli.durations import parse_duration
from cli.refs import ReferenceError, SecretRef, has_line_break, parse_ref
from webhook.errors import PodRejected

PREFIX = "esi.external-secrets.io/"

INJECT = PREFIX + "inject"
"""``"true"`` opts the pod in; any other value (or none) leaves the pod untouched."""

STORE = PREFIX + "store"
"""Default ClusterSecretStore for references that name none."""

ENV_PREFIX = PREFIX + "env-"
"""``env-<NAME>: <REF>``: environment variable NAME in the target containers (the container is wrapped)."""

FILE_PREFIX = PREFIX + "file-"
"""``file-<NAME>: <REF>``: file ``<secrets-dir>/<NAME>`` written by esi-init."""

SECRETS_DIR = PREFIX + "secrets-dir"
"""Mount path of the shared in-memory volume in the target containers; default ``/etc/secrets``."""

FILE_MODE = PREFIX + "file-mode"
"""Octal mode of the written files; default ``0440``. (So no file can be called ``mode``.)"""

CONTAINERS = PREFIX + "containers"
"""Comma list of target containers; default: every regular container."""

SERVER = PREFIX + "server"
"""Federation server URL; must be in the webhook's allow-list, else the pod is rejected."""

REFRESH_INTERVAL = PREFIX + "refresh-interval"
"""Duration (``90``, ``90s``, ``5m``, ``1h``): add the esi-refresh sidecar that keeps files fresh."""

INIT_FIRST = PREFIX + "init-first"
"""``"true"`` puts esi-init before the pod's own init containers; ``"false"`` (default) after them."""

STATUS = PREFIX + "status"
"""Written by the webhook (``injected``); a pod that carries it is never mutated again."""

STATUS_INJECTED = "injected"
DEFAULT_SECRETS_DIR = "/etc/secrets"
DEFAULT_FILE_MODE = "0440"

# Paths the webhook mounts itself; a secrets-dir on or under them would shadow them.
RESERVED_PATHS = ("/var/run/secrets/esi", "/esi/bin")

_KNOWN_KEYS = frozenset(
    {INJECT, STORE, SECRETS_DIR, FILE_MODE, CONTAINERS, SERVER, REFRESH_INTERVAL, INIT_FIRST, STATUS}
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][-._A-Za-z0-9]*$")
_FILE_MODE = re.compile(r"^0?[0-7]{3}$")
_CONTAINER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BOOLEANS = {"true": True, "false": False}
REMEMBERED_UP_TO_CHARS = 4096


@dataclass(frozen=True)
class InjectionSpec:
    """What a pod asked for, checked; references as ``(name, reference text)`` pairs sorted by name."""

    env: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]
    store: str | None = None
    secrets_dir: str = DEFAULT_SECRETS_DIR
    file_mode: str = DEFAULT_FILE_MODE
    containers: tuple[str, ...] | None = None
    server: str | None = None
    refresh_interval: str | None = None
    init_first: bool = False

    @property
    def env_mode(self) -> bool:
        """True when the target containers are wrapped by ``esi-cli exec``."""
        return bool(self.env)


def opted_in(annotations: Mapping[str, object]) -> bool:
    """True when the pod asks for injection: :func:`parse` gives a spec or a refusal, never ``None``."""
    return annotations.get(INJECT) == "true"


def is_injected(annotations: Mapping[str, str]) -> bool:
    """True when the webhook has already mutated the pod."""
    return annotations.get(STATUS) == STATUS_INJECTED


def parse(annotations: Mapping[str, object]) -> InjectionSpec | None:
    """Return the injection the annotations ask for, ``None`` when the pod has not opted in.

    Raise :class:`PodRejected` naming the annotation when one is unknown or malformed.
    """
    if not opted_in(annotations):
        return None
    return parse_opted_in(annotations)


def parse_opted_in(annotations: Mapping[str, object]) -> InjectionSpec:
    """What a pod that opted in (:func:`opted_in`) asks for; raise :class:`PodRejected` as :func:`parse`."""
    ours = tuple(sorted((key, value) for key, value in annotations.items() if key.startswith(PREFIX)))
    for key, value in ours:
        if not isinstance(value, str):
            raise PodRejected(f"annotation {key}: value must be a string")
    texts: tuple[tuple[str, str], ...] = ours  # type: ignore[assignment]  # checked just above
    if sum(len(key) + len(value) for key, value in texts) <= REMEMBERED_UP_TO_CHARS:
        return _parse_remembered(texts)
    return _parse_texts(texts)


def _parse_texts(items: tuple[tuple[str, str], ...]) -> InjectionSpec:
    texts = dict(items)
    _reject_unknown(texts)
    store = _parse_store(texts)
    env = _parse_refs(texts, ENV_PREFIX, _ENV_NAME, "an environment variable name", store)
    files = _parse_refs(texts, FILE_PREFIX, _FILE_NAME, "a file name", store)
    if not env and not files:
        raise PodRejected(
            f"annotation {INJECT} is true but no {ENV_PREFIX}<NAME> or {FILE_PREFIX}<NAME> annotation says "
            "what to fetch"
        )
    refresh_interval = _parse_refresh_interval(texts)
    if refresh_interval is not None and not files:
        raise PodRejected(
            f"annotation {REFRESH_INTERVAL}: only files can be refreshed; "
            f"add a {FILE_PREFIX}<NAME> annotation"
        )
    return InjectionSpec(
        env=env,
        files=files,
        store=store,
        secrets_dir=_parse_secrets_dir(texts),
        file_mode=_parse_file_mode(texts),
        containers=_parse_containers(texts),
        server=_parse_server(texts),
        refresh_interval=refresh_interval,
        init_first=_parse_boolean(texts, INIT_FIRST),
    )


# The pods of one Deployment carry the same annotations: each set is parsed once (the spec is frozen, so
# it is shared safely). Refusals are not remembered; neither are sets too large to keep.
_parse_remembered = functools.lru_cache(maxsize=256)(_parse_texts)


def _reject_unknown(annotations: Mapping[str, str]) -> None:
    for key in sorted(annotations):
        if key in _KNOWN_KEYS or key.startswith((ENV_PREFIX, FILE_PREFIX)):
            continue
        # A typo such as "secret-dir" would otherwise be ignored silently and the pod misconfigured.
        raise PodRejected(f"annotation {key}: unknown annotation under {PREFIX}")


def _parse_store(annotations: Mapping[str, str]) -> str | None:
    if STORE not in annotations:
        return None
    store = annotations[STORE].strip()
    if not store or any(char in store for char in ":#") or not store.isprintable():
        raise PodRejected(f"annotation {STORE}: {annotations[STORE]!r} is not a store name")
    return store


def _parse_refs(
    annotations: Mapping[str, str], prefix: str, name_pattern: re.Pattern[str], what: str, store: str | None
) -> tuple[tuple[str, str], ...]:
    refs = []
    for key in sorted(annotations):
        if not key.startswith(prefix) or key in _KNOWN_KEYS:
            continue
        name = key[len(prefix) :]
        if not name_pattern.fullmatch(name):
            raise PodRejected(f"annotation {key}: {name!r} is not {what}")
        _check_ref(key, annotations[key], store)
        # esi-cli parses the very text the user wrote, with the same parser, so nothing is lost in between.
        refs.append((name, annotations[key].strip()))
    return tuple(refs)


def _check_ref(key: str, text: str, store: str | None) -> SecretRef:
    if has_line_break(text):
        # esi-cli reads its references one per line (the same grammar: cli/refs.py).
        raise PodRejected(f"annotation {key}: a reference is a single line")
    try:
        ref = parse_ref(text)
    except ReferenceError as exc:
        raise PodRejected(f"annotation {key}: {exc}") from exc
    if ref.store is None and ref.generator is None and store is None:
        raise PodRejected(
            f"annotation {key}: reference {text.strip()!r} names no store and {STORE} is not set"
        )
    return ref


def _parse_secrets_dir(annotations: Mapping[str, str]) -> str:
    raw = annotations.get(SECRETS_DIR, DEFAULT_SECRETS_DIR).strip()
    path = posixpath.normpath(raw) if raw else ""
    if not path.startswith("/") or path.startswith("//") or path == "/" or ".." in path.split("/"):
        raise PodRejected(f"annotation {SECRETS_DIR}: {raw!r} must be an absolute path other than /")
    for reserved in RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/") or reserved.startswith(path + "/"):
            raise PodRejected(
                f"annotation {SECRETS_DIR}: {path} overlaps {reserved}, which the webhook mounts"
            )
    if ":" in path:
        raise PodRejected(f"annotation {SECRETS_DIR}: {raw!r} must not contain ':'")
    return path


def _parse_file_mode(annotations: Mapping[str, str]) -> str:
    raw = annotations.get(FILE_MODE, DEFAULT_FILE_MODE).strip()
    if not _FILE_MODE.fullmatch(raw):
        raise PodRejected(f"annotation {FILE_MODE}: {raw!r} is not an octal file mode such as 0440")
    return "0" + raw[-3:]


def _parse_containers(annotations: Mapping[str, str]) -> tuple[str, ...] | None:
    if CONTAINERS not in annotations:
        return None
    names = [name.strip() for name in annotations[CONTAINERS].split(",")]
    if not all(names):
        raise PodRejected(f"annotation {CONTAINERS}: {annotations[CONTAINERS]!r} holds an empty name")
    for name in names:
        if not _CONTAINER_NAME.fullmatch(name):
            raise PodRejected(f"annotation {CONTAINERS}: {name!r} is not a container name")
    return tuple(dict.fromkeys(names))


def _parse_server(annotations: Mapping[str, str]) -> str | None:
    if SERVER not in annotations:
        return None
    server = annotations[SERVER].strip().rstrip("/")
    if (
        not server.startswith("https://")
        or len(server) == len("https://")
        or any(c.isspace() for c in server)
    ):
        raise PodRejected(f"annotation {SERVER}: {annotations[SERVER]!r} is not an https:// URL")
    return server


def _parse_refresh_interval(annotations: Mapping[str, str]) -> str | None:
    if REFRESH_INTERVAL not in annotations:
        return None
    raw = annotations[REFRESH_INTERVAL]
    try:
        seconds = parse_duration(raw) if raw.strip() else 0.0
    except ValueError as exc:
        raise PodRejected(f"annotation {REFRESH_INTERVAL}: {exc}") from exc
    if seconds < 1:
        raise PodRejected(f"annotation {REFRESH_INTERVAL}: {raw!r} must be at least 1s")
    return f"{int(seconds)}s" if seconds.is_integer() else f"{seconds}s"


def _parse_boolean(annotations: Mapping[str, str], key: str) -> bool:
    raw = annotations.get(key, "false").strip().lower()
    if raw not in _BOOLEANS:
        raise PodRejected(f'annotation {key}: {annotations[key]!r} must be "true" or "false"')
    return _BOOLEANS[raw]
