"""Engine, sessions and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.settings import owner_only, private_dir, private_file

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the worker writes; busy_timeout waits instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _private_database(path: Path) -> None:
    """Create the SQLite file 0600 (in a new 0700 folder) before SQLite does, since
    SQLite creates it with the umask's mode (0644); its -wal and -shm files take the
    database's mode. Files an older version left readable are tightened."""
    if not path.parent.exists():
        private_dir(path.parent)
    private_file(path)
    for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if companion.exists():
            owner_only(companion)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _private_database(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def engine_for(url: str) -> Engine:
    """One engine (and pool) per database URL per process."""
    return make_engine(url)


@lru_cache
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    session = _sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def new_session(url: str) -> Session:
    return _sessionmaker(url)()


def begin_write(session: Session) -> None:
    """Make ``session``'s transaction a writer now, before it reads what it checks.

    SQLite takes its one write lock at a transaction's first write, so two transactions
    that each read (a run's log bytes, whether a row exists) and then write both read
    before either writes: a bound is passed, a unique key inserted twice. ``BEGIN
    IMMEDIATE`` takes the lock first, so such transactions run one after the other. A
    transaction that has written already holds the lock; PostgreSQL needs none of this
    (its callers lock the rows they check, which SQLite ignores)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    sqlite = conn.connection.driver_connection
    assert sqlite is not None  # a connection the session holds is a live one
    if not sqlite.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(url: str, revision: str = "head") -> None:
    """Apply every Alembic migration up to ``revision`` (idempotent; runs on each start),
    or go back down to it when the database is past it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine_for(url).connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes most of a table by copying it into a new one and dropping
            # the old (Alembic's batch mode); with foreign keys on, that drop deletes the
            # rows of every table that cascades from it (a run's metrics, artifacts,
            # reads…). SQLite's own procedure: keys off around it (outside a transaction,
            # where the pragma takes effect), then check them before committing.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if revision != "head":
                    command.downgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration left rows whose foreign keys "
                                           f"point at nothing: {broken[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
