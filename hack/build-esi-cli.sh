#!/usr/bin/env bash
# Build the self-contained esi-cli: one folder that runs in any Linux image of the same architecture,
# with no glibc, no zlib and no Python there (alpine, busybox, distroless/static, scratch). The esi-init
# image carries it; in env mode esi-init copies it into the esi-bin volume (ESI_BIN_DIR) for
# `esi-cli exec`. docs/images.md explains the layout:
#
#   esi-cli              a static launcher (hack/esi-cli-launcher.c, musl-gcc -static)
#   _internal/esi-cli    the PyInstaller one-folder program (bootloader + archive)
#   _internal/...        libpython, the standard library, and every shared library the program loads,
#                        the dynamic loader and the C library included
#
# Nothing is extracted at run time: the folder runs from a read-only volume as any uid.
#
# Usage: hack/build-esi-cli.sh [OUTPUT_DIR]     (default: dist/esi-cli)
#   OUTPUT_DIR becomes the bundle folder itself: OUTPUT_DIR/esi-cli is the executable.
#   PYTHON overrides the interpreter (default: .venv/bin/python, which has pyinstaller).
#   CC_STATIC overrides the compiler of the launcher (default: musl-gcc, Debian's musl-tools).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output="$(realpath -m "${1:-${root}/dist/esi-cli}")"
python="${PYTHON:-${root}/.venv/bin/python}"
cc_static="${CC_STATIC:-musl-gcc}"

case "${output}" in
  / | "${root}" | "${HOME:-/root}") echo "build-esi-cli: refusing to replace ${output}" >&2; exit 2 ;;
esac
command -v "${cc_static}" >/dev/null || {
  echo "build-esi-cli: ${cc_static} not found (hack/system-deps.sh installs musl-tools)" >&2
  exit 2
}

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
# A private PyInstaller cache: builds running side by side (tests, benchmarks) never share or clean one.
export PYINSTALLER_CONFIG_DIR="${PYINSTALLER_CONFIG_DIR:-${work}/config}"

# The same entry point as the console script `esi-cli = "cli.main:main"`.
cat >"${work}/esi-cli.py" <<'PY'
import sys

from cli.main import main

sys.exit(main())
PY

# esi-cli imports only the standard library; the excludes keep anything else from slipping in.
# --contents-directory . puts the program next to its libraries: the folder becomes _internal/.
"${python}" -m PyInstaller \
  --noconfirm --onedir --log-level WARN \
  --name esi-cli --contents-directory . \
  --paths "${root}" \
  --distpath "${work}/dist" --workpath "${work}/build" --specpath "${work}" \
  --strip \
  --exclude-module tkinter --exclude-module unittest --exclude-module pydoc --exclude-module decimal \
  --exclude-module flask --exclude-module werkzeug --exclude-module hvac --exclude-module jwt \
  --exclude-module kubernetes --exclude-module cryptography --exclude-module requests \
  --exclude-module yaml \
  "${work}/esi-cli.py"

bundle="${work}/bundle"
contents="${bundle}/_internal"
mkdir -p "${bundle}"
mv "${work}/dist/esi-cli" "${contents}"

# The libraries PyInstaller leaves to the system (the C library and its loader, libm, libdl, ...):
# whatever any ELF file of the folder resolves outside it. libgcc_s is loaded by glibc itself, with
# dlopen, when a thread is cancelled; no ldd line names it.
loader=""
while read -r name path; do
  case "${path}" in
    "${contents}"/*) ;;
    /*) cp -L "${path}" "${contents}/${name}" ;;
  esac
done < <(
  find "${contents}" -type f \( -name '*.so*' -o -name esi-cli \) -print0 |
    xargs -0 ldd 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// && $1 ~ /ld-/ { n = split($1, p, "/"); print p[n], $1 }' |
    sort -u
)
for candidate in "${contents}"/ld-*.so.*; do
  [ -e "${candidate}" ] && loader="$(basename "${candidate}")"
done
[ -n "${loader}" ] || { echo "build-esi-cli: no dynamic loader found for ${contents}/esi-cli" >&2; exit 1; }
libc_dir="$(dirname "$(ldd "${contents}/esi-cli" | awk '$1 == "libc.so.6" { print $3 }')")"
if [ -f "${libc_dir}/libgcc_s.so.1" ] && [ ! -e "${contents}/libgcc_s.so.1" ]; then
  cp -L "${libc_dir}/libgcc_s.so.1" "${contents}/libgcc_s.so.1"
fi

"${cc_static}" -static -Os -s -Wall -Wextra -Werror -o "${bundle}/esi-cli" \
  -DLOADER="\"${loader}\"" "${root}/hack/esi-cli-launcher.c"

rm -rf "${output}"
mkdir -p "$(dirname "${output}")"
mv "${bundle}" "${output}"
"${output}/esi-cli" version
echo "build-esi-cli: ${output}/esi-cli ($(du -sh "${output}" | cut -f1))"
