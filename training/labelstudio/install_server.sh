#!/usr/bin/env bash
# Install the Label Studio server into its own venv (~/.cache/warden/labelstudio-<ver>) and
# build the migrated data-dir template the tests copy. Idempotent; used by CI before pytest.
# Run: training/labelstudio/install_server.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" -m training.labelstudio.server install
