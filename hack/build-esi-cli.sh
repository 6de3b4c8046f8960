#!/usr/bin/env bash
# Build the self-contained esi-cli: a PyInstaller one-folder bundle (executable + _internal/) that runs
# in application images without Python (glibc). The esi-init image carries it; in env mode esi-init
# copies it into the esi-bin volume (ESI_BIN_DIR) for `esi-cli exec`.
#
# Usage: hack/build-esi-cli.sh [OUTPUT_DIR]     (default: dist/esi-cli)
#   OUTPUT_DIR becomes the bundle folder itself: OUTPUT_DIR/esi-cli is the executable.
#   PYTHON overrides the interpreter (default: .venv/bin/python, which has pyinstaller).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output="$(realpath -m "${1:-${root}/dist/esi-cli}")"
python="${PYTHON:-${root}/.venv/bin/python}"

case "${output}" in
  / | "${root}" | "${HOME:-/root}") echo "build-esi-cli: refusing to replace ${output}" >&2; exit 2 ;;
esac

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
"${python}" -m PyInstaller \
  --noconfirm --onedir --log-level WARN \
  --name esi-cli \
  --paths "${root}" \
  --distpath "${work}/dist" --workpath "${work}/build" --specpath "${work}" \
  --strip \
  --exclude-module tkinter --exclude-module unittest --exclude-module pydoc --exclude-module decimal \
  --exclude-module flask --exclude-module werkzeug --exclude-module hvac --exclude-module jwt \
  --exclude-module kubernetes --exclude-module cryptography --exclude-module requests \
  --exclude-module yaml \
  "${work}/esi-cli.py"

rm -rf "${output}"
mkdir -p "$(dirname "${output}")"
mv "${work}/dist/esi-cli" "${output}"
"${output}/esi-cli" version
echo "build-esi-cli: ${output}/esi-cli ($(du -sh "${output}" | cut -f1))"
