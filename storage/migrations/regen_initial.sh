#!/usr/bin/env bash
# Regenerate the initial migration from storage/models.py (only before the schema has shipped
# to users; after that, add a new revision with `alembic revision --autogenerate`).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
rm -f storage/migrations/versions/0001_initial*.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from storage.migrate import alembic_config
cfg = alembic_config(f"sqlite:///{sys.argv[1]}/x.db")
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001_initial")
PY
rm -rf "$tmp"
.venv/bin/ruff check -q --fix storage/migrations/versions/0001_initial*.py || true
.venv/bin/ruff format -q storage/migrations/versions/0001_initial*.py || true
