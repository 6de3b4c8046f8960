#!/usr/bin/env bash
# Build the self-contained esi-cli: one folder that runs in any Linux image of the same architecture,
# with no glibc, no zlib and no Python there (alpine, busybox, distroless/static, scratch). The esi-init
# image carries it; in env mode esi-init copies it into the esi-bin volume (ESI_BIN_DIR) for
# `esi-cli exec`. hack/esi_cli_bundle.py builds it; docs/images.md explains the layout:
#
#   esi-cli                  a static launcher (hack/esi-cli-launcher.c, musl-gcc -static)
#   _internal/esi-cli        CPython embedded with a fixed, isolated configuration (hack/esi-cli-python.c),
#                            libpython linked in statically when the Python has the static library
#   _internal/lib/python3.X  the compiled modules esi-cli imports (cli/ and the standard library)
#   _internal/*.so*          every shared library the program loads, the dynamic loader and the C
#                            library included
#
# Nothing is extracted at run time: the folder runs from a read-only volume as any uid.
#
# Usage: hack/build-esi-cli.sh [OUTPUT_DIR]     (default: dist/esi-cli)
#   OUTPUT_DIR becomes the bundle folder itself: OUTPUT_DIR/esi-cli is the executable.
#   PYTHON overrides the interpreter whose standard library and libpython are bundled (default:
#   Debian's /usr/bin/python3, built with PGO and LTO, whose static libpython and headers come with
#   python3-dev; else .venv/bin/python). It needs its C headers and a static or shared libpython.
#   CC_STATIC overrides the compiler of the launcher (default: musl-gcc, Debian's musl-tools).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output="$(realpath -m "${1:-${root}/dist/esi-cli}")"
cc_static="${CC_STATIC:-musl-gcc}"

case "${output}" in
  / | "${root}" | "${HOME:-/root}") echo "build-esi-cli: refusing to replace ${output}" >&2; exit 2 ;;
esac
command -v "${cc_static}" >/dev/null || {
  echo "build-esi-cli: ${cc_static} not found (hack/system-deps.sh installs musl-tools)" >&2
  exit 2
}

cd "${root}"
exec "${root}/.venv/bin/python" -m hack.esi_cli_bundle --cc-static "${cc_static}" \
  ${PYTHON:+--python "${PYTHON}"} "${output}"
