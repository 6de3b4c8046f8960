"""A real LDAP server (tests): Debian's ``slapd`` on a free loopback port with a throw-away mdb database.

``running_slapd(directory)`` writes a ``slapd.conf``, loads ``dc=example,dc=org`` with ``ou=people``
(one user per ``users`` entry) and ``ou=groups`` with ``slapadd``, starts ``slapd`` in the foreground
and stops it by pid. Nothing outside ``directory`` is read or written except the Debian schema files.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hack.ports import free_port

START_TIMEOUT = 15.0
SUFFIX = "dc=example,dc=org"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
SBIN = ("/usr/sbin", "/usr/local/sbin")


@dataclass(frozen=True)
class Slapd:
    """A running slapd: its URL, suffix and the admin (rootdn) credentials."""

    url: str
    suffix: str
    admin_dn: str
    admin_password: str
    pid: int

    @property
    def people_dn(self) -> str:
        """Where the users live."""
        return f"ou=people,{self.suffix}"

    @property
    def groups_dn(self) -> str:
        """Where the groups (groupOfNames) live."""
        return f"ou=groups,{self.suffix}"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=":".join(SBIN))
    if found is None:
        raise RuntimeError(
            f"{name} is not installed (Debian packages slapd, ldap-utils: hack/system-deps.sh)"
        )
    return found


def _config(directory: Path, admin_password: str) -> str:
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    return f"""{includes}
pidfile {directory / "slapd.pid"}
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw {admin_password}
directory {directory / "db"}
maxsize 16777216
"""


def _ldif(users: Mapping[str, str], groups: Mapping[str, list[str]]) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for uid, password in users.items():
        entries.append(
            f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {uid}\nsn: {uid}\nuserPassword: {password}\n"
        )
    for name, members in groups.items():
        lines = "".join(f"member: uid={uid},ou=people,{SUFFIX}\n" for uid in members)
        entries.append(f"dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {name}\n{lines}")
    return "\n".join(entries)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"slapd did not listen on 127.0.0.1:{port} within {START_TIMEOUT}s")


@contextmanager
def running_slapd(
    directory: Path, users: Mapping[str, str], groups: Mapping[str, list[str]] | None = None
) -> Iterator[Slapd]:
    """slapd on 127.0.0.1 serving ``users`` (uid -> password) and ``groups`` (cn -> uids); stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "db").mkdir(exist_ok=True)
    admin_password = secrets.token_urlsafe(18)
    config = directory / "slapd.conf"
    config.write_text(_config(directory, admin_password))
    data = directory / "data.ldif"
    data.write_text(_ldif(users, groups or {}))
    subprocess.run(
        [_tool("slapadd"), "-q", "-f", str(config), "-l", str(data)], check=True, capture_output=True
    )
    port = free_port()
    log = directory / "slapd.log"
    with log.open("wb") as out:
        # -d 0 keeps slapd in the foreground, so the pid we hold is the server's.
        process = subprocess.Popen(
            [_tool("slapd"), "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process, log)
        yield Slapd(f"ldap://127.0.0.1:{port}", SUFFIX, f"cn=admin,{SUFFIX}", admin_password, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
