#!/usr/bin/env bash
# Install the Debian packages that `make test` needs and that a fresh machine lacks. Idempotent: only
# missing packages are installed, and `apt-get update` runs only when something is missing. Nothing
# is configured system-wide; the container tools get private settings from the builds themselves.
#
#   buildah podman skopeo mmdebstrap runc uidmap fuse-overlayfs: `make images` and the image tests
#   gcc musl-tools python3-dev: the self-contained esi-cli (its static launcher; Debian's optimised,
#     static libpython and headers for its interpreter), and the musl test image
#   busybox-static: the busybox-only test image that runs the copied esi-cli
#   postgresql: a real PostgreSQL for OpenBao's database secrets engine (hack/postgres.py, tests/generators)
#   slapd ldap-utils: a real LDAP server for Vault's ldap auth method (hack/slapd.py)
set -euo pipefail

packages=(
  buildah podman skopeo mmdebstrap runc uidmap fuse-overlayfs
  gcc musl-tools python3-dev
  busybox-static
  postgresql
  slapd ldap-utils
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f '${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${package}")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing Debian packages: ${missing[*]} (run this script as root to install them)" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
