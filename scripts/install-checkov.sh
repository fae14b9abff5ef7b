#!/usr/bin/env bash
# Installs checkov into its own venv (.venv-checkov/ at the repo root), used by
# tests/infra to scan the Bicep templates offline. Idempotent: a venv that already
# runs the pinned version is left alone. Its own venv because checkov pins many
# packages (boto3, networkx, ...) that must not clash with the app's dependencies.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv-checkov"
PYTHON="${PYTHON:-python3}"

if [ -x "${VENV}/bin/checkov" ] \
    && [ "$("${VENV}/bin/checkov" --version 2>/dev/null)" = "${CHECKOV_VERSION}" ]; then
    echo "checkov ${CHECKOV_VERSION} already in ${VENV}"
    exit 0
fi

rm -rf "${VENV}"
"${PYTHON}" -m venv "${VENV}"
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "checkov==${CHECKOV_VERSION}"
echo "installed checkov $("${VENV}/bin/checkov" --version) in ${VENV}"
