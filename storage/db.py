"""Engines and units of work.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so several processes (UI,
scoring workers, CLI) can share one file; PostgreSQL goes through psycopg 3.

    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as session:
        ...  # commits on success, rolls back on error
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.settings import DBSettings

# Execution option marking a connection's transaction as read-only (see unit_of_work).
READ_ONLY_OPTION = "warden_read_only"


def normalise_url(url: str) -> str:
    """Route plain postgresql:// URLs to psycopg 3."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str, db: DBSettings | None = None, **kwargs: Any) -> Engine:
    db = db or DBSettings()
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=db.echo,
            connect_args={"timeout": db.sqlite_busy_timeout_s, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine, db)
        return engine
    return create_engine(
        url,
        echo=db.echo,
        pool_size=db.pool_size,
        max_overflow=db.pool_size,
        pool_pre_ping=True,  # a dropped connection is replaced, not surfaced to the user
        **kwargs,
    )


def _configure_sqlite(engine: Engine, db: DBSettings) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy own transactions: pysqlite's implicit BEGIN is deferred, which lets
        # two writers both read then fail to upgrade; BEGIN IMMEDIATE takes the write lock up
        # front and waits (busy_timeout) instead.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(db.sqlite_busy_timeout_s * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only units of work (reports, listings) need no write lock: under WAL a
        # deferred transaction reads a consistent snapshot without blocking claims.
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(
    engine_or_factory: Engine | sessionmaker[Session], *, read_only: bool = False
) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    read_only=True: for work that only reads; on SQLite it does not take the write lock.
    """
    factory = (
        engine_or_factory
        if isinstance(engine_or_factory, sessionmaker)
        else session_factory(engine_or_factory)
    )
    session = factory()
    try:
        if read_only:
            session.connection(execution_options={READ_ONLY_OPTION: True})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
