"""Throwaway PostgreSQL databases for tests and benchmarks: a fresh, empty database with a
unique name, dropped (connections and all) when done.

    url = create_scratch_database(PG_ADMIN_URL, prefix="warden_t")
    try:
        upgrade(url)
        ...
    finally:
        drop_scratch_database(PG_ADMIN_URL, url)

`admin_url` is any URL on the server with the right to create databases (usually the
`postgres` database as user postgres). Run: imported by tests/conftest.py and bench/*.py.
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _execute_as_admin(admin_url: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


def create_scratch_database(admin_url: str = DEFAULT_ADMIN_URL, *, prefix: str = "warden_t") -> str:
    """Create an empty database named `<prefix>_<random>`; returns its URL (password kept)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _execute_as_admin(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_scratch_database(admin_url: str, url: str) -> None:
    """Drop the database at `url`, closing any connection still open to it."""
    name = make_url(url).database
    _execute_as_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
