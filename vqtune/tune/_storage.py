"""Study storage: an Optuna RDB storage from a URL (SQLite in WAL mode, or PostgreSQL), passwords masked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from vqtune.config._search import Storage
from vqtune.errors import VqtuneError

SQLITE_TIMEOUT_S = 60  # wait this long for a lock: a few writers once per epoch never come close


class StorageError(VqtuneError):
    """The storage URL is malformed, or its database cannot be reached."""


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``, for every print, log and file."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable storage URL>"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_storage(storage: Storage, *, create: bool = True) -> optuna.storages.RDBStorage:
    """The Optuna storage for ``storage.url``, with heartbeats so that trials of a killed run can be found.

    SQLite: the directory is created, the database switched to WAL (readers never block the writer) and
    given a generous busy timeout. ``create=False`` refuses a SQLite file that does not exist yet.
    """
    url = storage.url
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):
        raise StorageError(
            f"storage {mask(url)!r}: not a database URL; use e.g. sqlite:///studies/vqtune.db or "
            "postgresql+psycopg2://user:password@host:5432/db"
        ) from None
    engine_kwargs: dict = {}
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise StorageError(f"storage {mask(url)}: an in-memory SQLite database cannot hold a study; name a file")
        path = Path(database)
        if not path.exists():
            if not create:
                raise StorageError(f"storage {mask(url)}: no such database file {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        _enable_wal(path)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    elif backend == "postgresql":
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=storage.heartbeat_interval,
            grace_period=storage.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise StorageError(f"storage {mask(url)}: no driver for this database ({exc})") from None
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"storage {mask(url)}: cannot open the database ({reason})") from None


def _enable_wal(path: Path) -> None:
    try:
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"storage sqlite:///{path}: cannot open the database ({exc})") from None
