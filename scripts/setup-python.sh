#!/usr/bin/env bash
# Creates .venv with the pinned dependencies; a no-op when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

STOWAGE_CACHE=${STOWAGE_CACHE:-/var/cache/stowage}
export PIP_CACHE_DIR="$STOWAGE_CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

stamp=$(cat requirements/*.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f .venv/.stamp ] && [ "$(cat .venv/.stamp)" = "$stamp" ]; then
  exit 0
fi
# The index once failed to resolve for a few seconds on a CI machine: three tries, 30 s apart.
install_requirements() {
  local try
  for try in 1 2 3; do
    .venv/bin/pip install -q -r requirements/dev.txt && return 0
    if [ "$try" -lt 3 ]; then echo "pip install failed (try $try of 3); again in 30 s" >&2; sleep 30; fi
  done
  return 1
}

rm -rf .venv
"$python" -m venv .venv
install_requirements
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
echo "$stamp" > .venv/.stamp
