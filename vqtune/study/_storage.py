"""Study storage: an Optuna RDB storage from a URL (SQLite in WAL mode, or PostgreSQL), passwords masked."""

from __future__ import annotations

import re
import sqlite3
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from vqtune.config import Storage
from vqtune.errors import StorageError

SQLITE_TIMEOUT_S = 60  # wait this long for a lock: a few writers once per epoch never come close
EXAMPLES = "sqlite:///studies/vqtune.db or postgresql+psycopg2://user:password@host:5432/db"


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``, for every print, log and file."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"^((?:[\w+.-]+://)?[^:/@]*:).*@", r"\1***@", url)  # from the user's colon to the last @


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_storage(storage: Storage, *, create: bool = True) -> optuna.storages.RDBStorage:
    """The Optuna storage for ``storage.url``, with heartbeats so that trials of a killed run can be found.

    SQLite: the directory is created, the database switched to WAL (readers never block the writer) and
    given a generous busy timeout. ``create=False`` refuses a SQLite file that does not exist yet.
    """
    url = storage.url
    parsed = _parse(url)
    engine_kwargs = _engine_kwargs(parsed)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if not path.exists():
            if not create:
                raise StorageError(f"storage {mask(url)}: no such database file {path}; give the --storage "
                                   "of an existing study (vqtune run creates one)")
            path.parent.mkdir(parents=True, exist_ok=True)
        _enable_wal(path)
    try:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental by Optuna; vqtune relies on them on purpose.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=storage.heartbeat_interval,
                grace_period=storage.grace_period,
                heartbeat_stale_trial_callback=requeue_once,
            )
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise _no_driver(parsed, exc) from None
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"storage {mask(url)}: cannot open the database ({reason})") from None


def check_storage(storage: Storage) -> None:
    """Refuse, without creating or writing anything, a storage that cannot work: a malformed URL, a missing
    driver, or a database server that does not answer. A SQLite file is only created when the search starts."""
    parsed = _parse(storage.url)
    if parsed.get_backend_name() == "sqlite":
        return
    try:
        engine = sqlalchemy.create_engine(parsed, **_engine_kwargs(parsed))
    except (NoSuchModuleError, ImportError) as exc:
        raise _no_driver(parsed, exc) from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(
            f"storage {mask(storage.url)}: cannot connect ({reason}); check that the server runs and the URL's "
            "host, port, user, password and database"
        ) from None
    finally:
        engine.dispose()


def requeue_once(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue again the parameters of a trial whose run died, once. Unlike Optuna's retry callback, the new
    trial starts clean: none of the dead trial's attributes (its fail reason, epochs, worker) but ``retry_of``.

    Once: a retry that ran and died too is not queued again. A trial that never drew its parameters (its driver
    died right after ``ask``) never ran: a fresh one has nothing to keep, a retry taken from the queue passes on
    the parameters it was queued with. A trial whose retry is queued already (its driver queued it, then died
    before failing the trial) is not queued twice.
    """
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    if not params or (trial.params and "retry_of" in trial.user_attrs):
        return
    if any(t.user_attrs.get("retry_of") == trial.number for t in study.get_trials(deepcopy=False)):
        return
    study.enqueue_trial(params, user_attrs={"retry_of": trial.number})


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"storage {mask(url)!r}: not a database URL; use e.g. {EXAMPLES}") from None
    if parsed.get_backend_name() == "sqlite" and (not parsed.database or parsed.database == ":memory:"):
        raise StorageError(f"storage {mask(url)}: an in-memory SQLite database cannot hold a study; name a file, "
                           "e.g. sqlite:///studies/vqtune.db")
    return parsed


def _engine_kwargs(parsed: URL) -> dict:
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if parsed.get_backend_name() == "postgresql":
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def _no_driver(parsed: URL, exc: BaseException) -> StorageError:
    cause = exc.__cause__ or exc  # Optuna wraps the driver's ImportError in its own
    reason = str(cause).strip().splitlines()[0] if str(cause) else cause.__class__.__name__
    return StorageError(
        f"storage {parsed.render_as_string(hide_password=True)}: no driver for {parsed.drivername} "
        f"installed ({reason}); install it or use {EXAMPLES}"
    )


def _enable_wal(path: Path) -> None:
    try:
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"storage sqlite:///{path}: cannot open the database ({exc})") from None
