"""What ``fetch``, ``exec`` and ``whoami`` do, once the configuration has been checked.

``fetch`` and ``exec`` read the same configuration, so that one set of ``ESI_*`` variables serves both
the ``esi-init`` container and a wrapped application: ``fetch`` writes the ``--file`` secrets and asks
for the ``--env`` ones too (so that a denied or missing env secret already fails ``esi-init``, before
the application starts), ``exec`` sets only the ``--env`` secrets and writes nothing.
"""

from __future__ import annotations

import json
import re
import sys
import time

from cli import log
from cli.errors import CliError, DeniedError, NotFoundError, UsageError
from cli.exec import exec_with_env
from cli.files import write_changed_files, write_files

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from cli.client import FederationClient
    from cli.refs import SecretRef
    from cli.settings import EnvBinding, FileBinding, Secrets

    Binding = EnvBinding | FileBinding


def run_fetch(client: FederationClient, secrets: Secrets, sleep: Callable[[float], None] = time.sleep) -> int:
    """Fetch every reference, write the ``--file`` ones, and with a refresh interval keep them fresh."""
    bindings: list[Binding] = [*secrets.files, *secrets.envs]
    if not bindings:
        raise UsageError("nothing to fetch: give --file PATH=REF / ESI_FILES (or --env / ESI_ENV)")
    if secrets.refresh_interval is not None and not secrets.files:
        raise UsageError("--refresh-interval keeps files fresh, but no --file / ESI_FILES is given")
    if secrets.bin_dir is not None:
        from cli.install import install_self  # noqa: PLC0415 - env mode's esi-init only

        log.info("installed", "copied the self-contained esi-cli", path=install_self(secrets.bin_dir))
    values = fetch_values(client, bindings)
    write_files(_file_contents(secrets.files, values), secrets.file_mode)
    log.info(
        "fetched",
        f"wrote {len(secrets.files)} file(s); {len(secrets.envs)} env reference(s) checked",
        files=[binding.path for binding in secrets.files],
        references=sorted({binding.ref.render() for binding in bindings}),
    )
    if secrets.refresh_interval is not None:
        refresh_files(client, secrets, secrets.refresh_interval, sleep)
    return 0


def refresh_files(
    client: FederationClient,
    secrets: Secrets,
    interval: float,
    sleep: Callable[[float], None],
    rounds: int | None = None,
) -> None:
    """Every ``interval`` seconds fetch the file secrets again and rewrite only the files that changed.

    A failed round is logged and the files keep their last good content; the next round tries again.
    Runs until a signal ends the process (``rounds`` bounds it for tests).
    """
    done = 0
    while rounds is None or done < rounds:
        sleep(interval)
        done += 1
        try:
            values = fetch_values(client, list(secrets.files))
            changed = write_changed_files(_file_contents(secrets.files, values), secrets.file_mode)
        except CliError as exc:
            log.warning("refresh-failed", exc.message, exit_code=exc.exit_code)
            continue
        if changed:
            log.info("refreshed", f"rewrote {len(changed)} changed file(s)", files=changed)


def run_exec(client: FederationClient, secrets: Secrets, command: Sequence[str]) -> int:
    """Fetch the ``--env`` secrets and replace this process with ``command``; returns only on error."""
    if not secrets.envs:
        raise UsageError("exec: nothing to fetch: give --env NAME=REF or ESI_ENV")
    values = fetch_values(client, list(secrets.envs))
    added = {binding.name: values[binding.ref] for binding in secrets.envs}
    for binding in secrets.envs:
        if "\0" in added[binding.name]:
            raise CliError(f"{binding.describe()}: the secret holds a NUL byte, which no env var can carry")
    log.info("exec", f"starting {command[0]}", env=sorted(added))
    exec_with_env(command, added)


def run_whoami(client: FederationClient) -> int:
    """Print what the server sees (identity) and allows, as JSON on stdout."""
    answer = client.whoami()
    sys.stdout.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")
    return 0


def fetch_values(client: FederationClient, bindings: Sequence[Binding]) -> dict[SecretRef, str]:
    """Ask for each distinct reference of ``bindings`` once; return the value of each reference."""
    refs = list(dict.fromkeys(binding.ref for binding in bindings))
    body: dict[str, object] = {"secrets": [_wire_ref(ref) for ref in refs]}
    connection = client.connection
    if connection.cluster:
        body["cluster"] = connection.cluster
    if connection.ca_file:
        body["caCert"] = _read_ca_cert(connection.ca_file)
    try:
        answer = client.fetch(body)
    except (DeniedError, NotFoundError, UsageError) as exc:
        if exc.status is None:
            raise
        raise type(exc)(_name_failing(exc.message, bindings), exc.status) from None
    return _values_in_order(answer, refs)


def _wire_ref(ref: SecretRef) -> dict[str, str]:
    item = {"store": ref.store or "", "key": ref.key}
    if ref.property is not None:
        item["property"] = ref.property
    return item


def _read_ca_cert(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read client cluster CA file {path}: {exc}") from None


def _name_failing(message: str, bindings: Sequence[Binding]) -> str:
    """Add the references the server's detail names (or, failing that, all of them) to ``message``."""
    named = _failing(message, bindings)
    label = "failing" if named else "requested"
    return f"{message}; {label}: {', '.join(binding.describe() for binding in named or bindings)}"


def _failing(message: str, bindings: Sequence[Binding]) -> list[Binding]:
    # The server names items as store:key#property (or store:key); match those first, whole words only
    # ("api" must not match inside "api-keys"), then fall back to the bare key.
    exact = [binding for binding in bindings if any(_word(form, message) for form in _forms(binding.ref))]
    return exact or [binding for binding in bindings if _word(binding.ref.key, message)]


def _forms(ref: SecretRef) -> list[str]:
    forms = [ref.render(), f"{ref.store}:{ref.key}"]
    if ref.property is not None:
        forms = [
            ref.render(),
            f"{ref.store}:{ref.key}#{ref.property}",
            f"{ref.store}:{ref.key}.{ref.property}",
        ]
    return forms


def _word(text: str, message: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(text)}(?![\w#-])(?!\.\w)", message) is not None


def _values_in_order(answer: dict[str, object], refs: list[SecretRef]) -> dict[SecretRef, str]:
    items = answer.get("secrets")
    if not isinstance(items, list) or len(items) != len(refs):
        raise CliError(f"the server answered {_count(items)} secrets for {len(refs)} requested")
    values: dict[SecretRef, str] = {}
    for ref, item in zip(refs, items, strict=True):
        if not isinstance(item, dict) or not _matches(ref, item) or not isinstance(item.get("value"), str):
            raise CliError(f"the server's answer for {ref.render()} does not match the request")
        values[ref] = item["value"]
    return values


def _matches(ref: SecretRef, item: dict[str, object]) -> bool:
    return (
        item.get("store") == ref.store and item.get("key") == ref.key and item.get("property") == ref.property
    )


def _count(items: object) -> str:
    return str(len(items)) if isinstance(items, list) else "no list of"


def _file_contents(files: Sequence[FileBinding], values: dict[SecretRef, str]) -> dict[str, bytes]:
    return {binding.path: values[binding.ref].encode("utf-8") for binding in files}
