"""esi-cli's configuration: command-line options over ``ESI_*`` environment variables over defaults.

Everything is checked here, before any request is made, so that a bad option, reference or file ends
the run with exit code 2 and a message naming it. Plain slotted classes instead of dataclasses: the
``dataclasses`` module pulls in ``inspect``, which alone costs more start-up time than the request.
"""

from __future__ import annotations

import os

from cli import environment, flags
from cli.durations import parse_duration
from cli.errors import UsageError
from cli.flags import DEFAULT_CA_FILE, DEFAULT_TOKEN_FILE
from cli.options import OptionError
from cli.refs import ReferenceError, SecretRef, parse_ref
from cli.serverurl import parse_server_url

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping

# Below this a sidecar would only load the server; the federation rate-limits per subject anyway.
MIN_REFRESH_INTERVAL = 1.0

# option attribute -> environment variable, as the declarations in ``cli.flags`` tie them.
ENV_VARS = {option.dest: option.env for option in flags.ALL}
SERVER_CA_PEM_VAR = environment.SERVER_CA


class EnvBinding:
    """``NAME=REF``: environment variable ``name`` of the executed command gets the secret ``ref``."""

    __slots__ = ("name", "ref")

    def __init__(self, name: str, ref: SecretRef) -> None:
        self.name = name
        self.ref = ref

    def describe(self) -> str:
        """How messages name this binding: ``env NAME=REF``."""
        return f"env {self.name}={self.ref.render()}"


class FileBinding:
    """``PATH=REF``: the file at absolute ``path`` gets the secret ``ref``."""

    __slots__ = ("path", "ref")

    def __init__(self, path: str, ref: SecretRef) -> None:
        self.path = path
        self.ref = ref

    def describe(self) -> str:
        """How messages name this binding: ``file PATH=REF``."""
        return f"file {self.path}={self.ref.render()}"


class Connection:
    """What every request needs: where the server is, how to trust it, and who is asking."""

    __slots__ = ("ca_file", "cluster", "server", "server_ca_pem", "timeout", "token_file")

    def __init__(
        self,
        *,
        server: str,
        token_file: str,
        ca_file: str | None,
        server_ca_pem: str | None,
        cluster: str | None,
        timeout: float,
    ) -> None:
        self.server = server
        self.token_file = token_file
        self.ca_file = ca_file
        self.server_ca_pem = server_ca_pem
        self.cluster = cluster
        self.timeout = timeout


class Secrets:
    """What ``fetch`` and ``exec`` deliver, and how files are written."""

    __slots__ = ("bin_dir", "directory", "envs", "file_mode", "files", "refresh_interval")

    def __init__(
        self,
        *,
        envs: tuple[EnvBinding, ...],
        files: tuple[FileBinding, ...],
        file_mode: int,
        refresh_interval: float | None,
        bin_dir: str | None = None,
        directory: str | None = None,
    ) -> None:
        self.envs = envs
        self.files = files
        self.file_mode = file_mode
        self.refresh_interval = refresh_interval
        self.bin_dir = bin_dir  # env mode: where fetch copies the self-contained esi-cli
        self.directory = directory  # --dir: no symbolic link is followed below it


def option(values: Mapping[str, object], environ: Mapping[str, str], name: str) -> str | None:
    """The command-line value of option ``name``, else its environment variable, else its default."""
    value = _resolve(values, environ, name)
    return str(value) if value is not None else None


def entries(values: Mapping[str, object], environ: Mapping[str, str], name: str) -> list[str]:
    """The entries of a repeatable option: every time it was given, else its variable's lines."""
    value = _resolve(values, environ, name)
    return [str(entry) for entry in value] if isinstance(value, list) else []


def _resolve(values: Mapping[str, object], environ: Mapping[str, str], name: str) -> object:
    try:
        return flags.BY_DEST[name].resolve(values, environ)
    except OptionError as exc:
        raise UsageError(str(exc)) from None


def load_connection(values: Mapping[str, object], environ: Mapping[str, str]) -> Connection:
    """Build and check the connection options; raise ``UsageError`` naming the bad one."""
    server = option(values, environ, "server")
    if server is None:
        raise UsageError("no federation server: give --server or ESI_SERVER")
    token_file = option(values, environ, "token_file") or DEFAULT_TOKEN_FILE
    if not os.path.isfile(token_file):
        raise UsageError(f"token file {token_file} does not exist (--token-file / ESI_TOKEN_FILE)")
    return Connection(
        server=parse_server_url(server),
        token_file=token_file,
        ca_file=_client_ca_file(option(values, environ, "ca_file")),
        server_ca_pem=_server_ca_pem(option(values, environ, "server_ca_file"), environ),
        cluster=option(values, environ, "cluster"),
        timeout=_timeout(option(values, environ, "timeout") or flags.DEFAULT_TIMEOUT),
    )


def load_secrets(values: Mapping[str, object], environ: Mapping[str, str]) -> Secrets:
    """Build and check the references, target files, file mode and refresh interval."""
    store = option(values, environ, "store")
    directory = option(values, environ, "dir") or flags.DEFAULT_DIR
    envs = tuple(
        EnvBinding(_env_name(name, text), _ref(ref, store, f"--env {text}"))
        for text, name, ref in _bindings(values, environ, "env", "--env NAME=REF")
    )
    files = tuple(
        FileBinding(file_path(directory, path, text), _ref(ref, store, f"--file {text}"))
        for text, path, ref in _bindings(values, environ, "file", "--file PATH=REF")
    )
    _refuse_duplicates([binding.name for binding in envs], "environment variable")
    _refuse_duplicates([binding.path for binding in files], "file")
    return Secrets(
        envs=envs,
        files=files,
        file_mode=parse_file_mode(option(values, environ, "file_mode") or flags.DEFAULT_FILE_MODE),
        refresh_interval=_refresh_interval(option(values, environ, "refresh_interval")),
        bin_dir=option(values, environ, "bin_dir"),
        directory=os.path.abspath(directory),
    )


def parse_file_mode(text: str) -> int:
    """Parse an octal file mode such as ``0440``, ``440`` or ``0o440`` (permission bits only)."""
    digits = text.strip().lower().removeprefix("0o")
    try:
        mode = int(digits, 8)
    except ValueError:
        raise UsageError(f"file mode {text!r} is not octal, e.g. 0440") from None
    if not 0 <= mode <= 0o777:
        raise UsageError(f"file mode {text!r} must be between 0000 and 0777")
    return mode


def file_path(directory: str, path: str, text: str) -> str:
    """Return the absolute target of ``PATH``: relative paths are under ``directory`` and stay there."""
    if not path or path.endswith("/"):
        raise UsageError(f"--file {text!r}: PATH must name a file")
    if os.path.isabs(path):
        return os.path.normpath(path)
    if ".." in path.split("/"):
        raise UsageError(f"--file {text!r}: a relative PATH must stay under --dir (no '..')")
    return os.path.normpath(os.path.join(os.path.abspath(directory), path))


def _bindings(
    values: Mapping[str, object], environ: Mapping[str, str], name: str, shape: str
) -> list[tuple[str, str, str]]:
    result = []
    for entry in entries(values, environ, name):
        target, separator, ref = entry.partition("=")
        if not separator:
            raise UsageError(f"{entry!r} is not {shape}")
        result.append((entry, target.strip(), ref.strip()))
    return result


def _ref(text: str, store: str | None, where: str) -> SecretRef:
    try:
        ref = parse_ref(text, store)
    except ReferenceError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if ref.store is None and ref.generator is None:
        raise UsageError(f"{where}: reference {text!r} names no store and no --store / ESI_STORE is set")
    return ref


def _env_name(name: str, text: str) -> str:
    if not name or "\0" in name or any(char.isspace() for char in name):
        raise UsageError(f"--env {text!r}: NAME must be a non-empty variable name")
    return name


def _refuse_duplicates(names: list[str], kind: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(f"{kind} {name} is given twice")
        seen.add(name)


def _client_ca_file(given: str | None) -> str | None:
    if given is None:
        return DEFAULT_CA_FILE if os.path.isfile(DEFAULT_CA_FILE) else None
    if not os.path.isfile(given):
        raise UsageError(f"client cluster CA file {given} does not exist (--ca-file / ESI_CA_FILE)")
    return given


def _server_ca_pem(file_name: str | None, environ: Mapping[str, str]) -> str | None:
    if file_name is not None:
        try:
            with open(file_name, encoding="ascii") as handle:
                pem = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read server CA file {file_name}: {exc}") from None
        where = f"server CA file {file_name}"
    else:
        pem = environ.get(SERVER_CA_PEM_VAR, "")
        where = SERVER_CA_PEM_VAR
        if not pem.strip():
            return None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise UsageError(f"{where} holds no PEM certificate")
    return pem


def _timeout(text: str) -> float:
    seconds = _duration(text, "--timeout / ESI_TIMEOUT")
    if seconds <= 0:
        raise UsageError(f"--timeout {text!r} must be more than zero")
    return seconds


def _refresh_interval(text: str | None) -> float | None:
    if text is None or text.strip().lower() == "off":
        return None
    seconds = _duration(text, "--refresh-interval / ESI_REFRESH_INTERVAL")
    if seconds == 0:
        return None
    if seconds < MIN_REFRESH_INTERVAL:
        raise UsageError(f"--refresh-interval {text!r} must be 0/off or at least {MIN_REFRESH_INTERVAL:g}s")
    return seconds


def _duration(text: str, where: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
