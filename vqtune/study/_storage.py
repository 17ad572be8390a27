"""Study storage: an Optuna RDB storage from a URL (SQLite in WAL mode, or PostgreSQL), passwords masked."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import warnings
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from vqtune.config import DEFAULT_STORAGE, Storage
from vqtune.errors import StorageError
from vqtune.study._attrs import RETRY_OF_ATTR

SQLITE_TIMEOUT_S = 60  # wait this long for a lock: a few writers once per epoch never come close
EXAMPLES = f"{DEFAULT_STORAGE} or postgresql+psycopg2://user:password@host:5432/db"


# Query arguments that carry a secret (libpq's password and sslpassword, other drivers' passwd, pwd, token...).
_SECRET_ARGUMENT = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
_SECRET_ARGUMENT_TEXT = re.compile(r"(?<=[?&])([^=&]*(?:pass|pwd|secret|token)[^=&]*)=[^&]*", re.IGNORECASE)


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``, for every print, log and file: the password after the user
    name, all of it when it holds an ``@`` not written ``%40`` (up to the last ``@``), and the value of every query
    argument that carries one (``?password=...``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _mask_text(url)
    return _mask_text(url) if _stray_at(parsed) else _masked(parsed)


def _masked(parsed: URL) -> str:
    return _SECRET_ARGUMENT_TEXT.sub(r"\1=***", parsed.render_as_string(hide_password=True))


def _mask_text(url: str) -> str:
    """A URL that does not parse as its user meant it, masked as text: from the user's colon to the last @, and the
    secret query arguments."""
    url = re.sub(r"^((?:[\w+.-]+://)?[^:/@]*:).*@", r"\1***@", url, flags=re.DOTALL)
    return _SECRET_ARGUMENT_TEXT.sub(r"\1=***", url)


def _stray_at(parsed: URL) -> bool:
    """Whether an ``@`` of the password (or user name) was left unencoded: SQLAlchemy ends the password at the first
    ``@`` and takes the rest of it for the host."""
    return "@" in (parsed.host or "")


def _secrets(parsed: URL) -> list[str]:
    """The secrets ``parsed`` carries: its password and the values of its secret query arguments."""
    values = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if _SECRET_ARGUMENT.search(key):
            values += [value] if isinstance(value, str) else list(value)
    return [v for v in values if v]


def _reason(exc: BaseException, parsed: URL) -> str:
    """The first line of what the driver said, with any secret of the URL it may quote masked."""
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    for secret in sorted(_secrets(parsed), key=len, reverse=True):
        reason = reason.replace(secret, "***")
    return reason


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def open_storage(storage: Storage, *, create: bool = True) -> optuna.storages.RDBStorage:
    """The Optuna storage for ``storage.url``, with heartbeats so that trials of a killed run can be found.

    SQLite: the directory is created, the database switched to WAL (readers never block the writer) and
    given a generous busy timeout. ``create=False`` (the commands that only read) changes nothing: it refuses a
    SQLite file that does not exist yet, and any database without Optuna's tables, rather than create them.
    """
    url = storage.url
    parsed = _parse(url)
    engine_kwargs = _engine_kwargs(parsed)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        path = Path(parsed.database)
        if not path.exists():
            if not create:
                raise StorageError(f"storage {mask(url)}: no such database file {path}; give the --storage "
                                   "of an existing study (vqtune run creates one)")
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            _check_sqlite_file(url, path, reading=not create)
        if create:
            _enable_wal(path)
    elif not create:
        _check_tables(url, parsed)
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
                skip_table_creation=not create,
            )
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise _no_driver(parsed, exc) from None
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise StorageError(f"storage {mask(url)}: cannot open the database ({_reason(exc, parsed)})") from None


def check_storage(storage: Storage) -> None:
    """Refuse, without creating or writing anything, a storage that cannot work: a malformed URL, a missing
    driver, or a database server that does not answer. A SQLite file is only created when the search starts."""
    parsed = _parse(storage.url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if path.exists():  # a damaged file, or another program's database, is refused before anything starts
            _check_sqlite_file(storage.url, path, reading=False)
        return
    try:
        engine = sqlalchemy.create_engine(parsed, **_engine_kwargs(parsed))
    except (NoSuchModuleError, ImportError) as exc:
        raise _no_driver(parsed, exc) from None
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        raise StorageError(
            f"storage {mask(storage.url)}: cannot connect ({_reason(exc, parsed)}); check that the server runs and "
            "the URL's host, port, user, password and database"
        ) from None
    finally:
        engine.dispose()


def requeue_once(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """Queue again the parameters of a trial whose run died, once. Unlike Optuna's retry callback, the new
    trial starts clean: none of the dead trial's attributes (its fail reason, epochs, worker) but ``retry_of``.

    Once: a retry that ran and died too is not queued again. A trial that never drew its parameters (its driver
    died right after ``ask``) never ran: a fresh one has nothing to keep, a retry taken from the queue passes on
    the parameters it was queued with. A trial whose retry is queued already (its driver queued it, then died
    before failing the trial) is not queued twice.

    Returns what became of the parameters, as :func:`requeue_outcome` says it.
    """
    queued, said = requeue_outcome(study, trial)
    if queued:
        study.enqueue_trial(_params(trial), user_attrs={RETRY_OF_ATTR: trial.number})
    return said


def requeue_outcome(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> tuple[bool, str]:
    """Whether :func:`requeue_once` would queue ``trial``'s parameters now, and what becomes of them in words,
    for the end of its fail reason: queued again, queued already, or why not."""
    params = _params(trial)
    if not params:
        return False, "it had drawn no parameters, so none were queued again"
    if trial.params and RETRY_OF_ATTR in trial.user_attrs:
        return False, (f"its parameters were not queued again: it was the retry of trial "
                       f"{trial.user_attrs[RETRY_OF_ATTR]} and a trial is retried once (vqtune trials --study "
                       f"{study.study_name} --unfinished lists parameters no trial finished)")
    retry = next((t.number for t in study.get_trials(deepcopy=False)
                  if t.user_attrs.get(RETRY_OF_ATTR) == trial.number), None)
    if retry is not None:
        return False, f"its parameters were queued again already (trial {retry})"
    return True, "its parameters were queued again"


def _params(trial: optuna.trial.FrozenTrial) -> dict:
    return trial.params or trial.system_attrs.get("fixed_params") or {}


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"storage {mask(url)!r}: not a database URL; use e.g. {EXAMPLES}") from None
    if _stray_at(parsed):  # the tail of the password would be taken for the host, and sent to a name server
        raise StorageError(f"storage {mask(url)}: an @ in the password or user name must be written %40 (as must "
                           "any : / ? # in them), e.g. postgresql+psycopg2://user:p%40ss@host:5432/db")
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
        f"storage {_masked(parsed)}: no driver for {parsed.drivername} "
        f"installed ({reason}); install it or use {EXAMPLES}"
    )


OPTUNA_TABLES = {"studies", "trials"}


def _check_sqlite_file(url: str, path: Path, reading: bool) -> None:
    """Refuse, reading it without a write (not even a journal mode), a file that is no SQLite database, or one that
    holds tables but not Optuna's (another program's: vqtune must not add its tables there)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"storage {mask(url)}: {path} is not a SQLite database ({exc}); move it away or give "
                           "another --storage") from None
    if OPTUNA_TABLES <= tables:
        return
    if reading:
        raise StorageError(f"storage {mask(url)}: {path} holds no vqtune study (no Optuna tables); give the "
                           "--storage of a study (vqtune run creates one)")
    if tables:
        raise StorageError(f"storage {mask(url)}: {path} is another program's database (tables "
                           f"{', '.join(sorted(tables)[:5])}); give a new file for the studies")


def _check_tables(url: str, parsed: URL) -> None:
    """A server database that only reading commands open must already hold Optuna's tables."""
    try:
        engine = sqlalchemy.create_engine(parsed, **_engine_kwargs(parsed))
    except (NoSuchModuleError, ImportError) as exc:
        raise _no_driver(parsed, exc) from None
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        raise StorageError(f"storage {mask(url)}: cannot connect ({_reason(exc, parsed)}); check that the server runs "
                           "and the URL's host, port, user, password and database") from None
    finally:
        engine.dispose()
    if not OPTUNA_TABLES <= tables:
        raise StorageError(f"storage {mask(url)}: the database holds no vqtune study (no Optuna tables); give the "
                           "--storage of a study (vqtune run creates one)")


def _enable_wal(path: Path) -> None:
    try:
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StorageError(f"storage sqlite:///{path}: cannot open the database ({exc})") from None
