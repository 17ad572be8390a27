"""A throwaway PostgreSQL server for tests: started from the installed binaries, never left running.

Use it through the fixtures (register them in a conftest with
``from tests.postgres import postgres_url, fresh_postgres_db  # noqa: F401``):

* ``postgres_url`` (session): one server for the whole run; yields a SQLAlchemy URL such as
  ``postgresql+psycopg2://vqtune:pw0123...@127.0.0.1:54321/vqtune``. The URL carries a real
  password (the server uses scram-sha-256 over TCP), so tests can check that it is never printed.
  Skips with a reason when no PostgreSQL binaries (or, as root, no unprivileged user) exist;
  set ``VQTUNE_REQUIRE_POSTGRES=1`` to make that a failure instead.
* ``fresh_postgres_db`` (function): a new, empty database on that server, dropped afterwards.

PostgreSQL refuses to run as root. When the tests run as root, both server programs (initdb
and postgres) run as the ``postgres`` system user (else ``nobody``): ``subprocess`` switches
user, group and supplementary groups in the child before exec (``user=``, ``group=``,
``extra_groups=[]``), so no ``su``/``runuser`` is needed. As any other user they run as that
user. The postmaster is started directly (not through pg_ctl) as a child of the test process,
so stopping it can wait for it and reap it: nothing is left behind, not even a zombie.

The server listens on 127.0.0.1 only, on a free port, with Unix sockets turned off and
durability off (fsync, synchronous_commit, full_page_writes) for speed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "vqtune"
PG_DB = "vqtune"
DRIVER = "postgresql+psycopg2"
UNPRIVILEGED_USERS = ("postgres", "nobody")
_PROGRAMS = ("initdb", "postgres")

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "100",
    "shared_buffers": "64MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
    "log_checkpoints": "off",
}


class PostgresUnavailable(RuntimeError):
    """Nothing to start a server with here (a reason to skip, not a failure)."""


# ---------------------------------------------------------------------------------- binaries


def _has_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _PROGRAMS)


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name)) or (0,)


def find_pg_bin() -> Path | None:
    """The directory holding initdb and postgres: ``$VQTUNE_PG_BIN``, then PATH, then
    ``/usr/lib/postgresql/*/bin`` (newest version first). None when there is none."""
    override = os.environ.get("VQTUNE_PG_BIN")
    if override:
        return Path(override) if _has_programs(Path(override)) else None
    on_path = shutil.which("initdb")
    if on_path:
        directory = Path(on_path).resolve().parent
        if _has_programs(directory):
            return directory
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for directory in installed:
        if _has_programs(directory):
            return directory
    return None


# ------------------------------------------------------------------------------ who runs it


@dataclass(frozen=True)
class _RunAs:
    """The account the server programs run as; uid None means the current user, unchanged."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)


def server_account() -> _RunAs:
    """The current user, or as root an unprivileged system user; PostgresUnavailable if none."""
    if os.geteuid() != 0:
        return _RunAs(pwd.getpwuid(os.geteuid()).pw_name)
    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _RunAs(name, entry.pw_uid, entry.pw_gid)
    raise PostgresUnavailable(
        "running as root and no unprivileged user (" + " or ".join(UNPRIVILEGED_USERS)
        + ") exists to run PostgreSQL, which refuses to run as root"
    )


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # TZ set: initdb skips its slow scan of the zoneinfo database. LC_ALL: a locale that exists.
    env.update({"TZ": "UTC", "LC_ALL": "C", "LANG": "C", "HOME": str(home)})
    return env


def _run(cmd: list[str], account: _RunAs, workdir: Path, timeout: float = 60) -> None:
    """Run one server program to completion as `account`, its output kept for the error."""
    out_path = workdir / "command.out"
    with open(out_path, "w") as out:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=workdir, env=_clean_env(workdir), timeout=timeout, **account.popen_kwargs(),
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed (exit {proc.returncode}):\n"
            + out_path.read_text(errors="replace")[-3000:]
        )


def _workdir(base_dir: Path, account: _RunAs) -> Path:
    """A fresh directory owned by `account`, under base_dir when that account can reach it.

    pytest's tmp directories live under /tmp/pytest-of-root (mode 0700), which the postgres
    user cannot traverse, so as root this falls back to a private directory in the system
    temp dir."""
    base_dir.mkdir(parents=True, exist_ok=True)
    if account.uid is None:
        return Path(tempfile.mkdtemp(prefix="vqtune-pg-", dir=base_dir))
    probe = subprocess.run(["test", "-x", str(base_dir), "-a", "-r", str(base_dir)],
                           **account.popen_kwargs(), cwd="/", check=False)
    workdir = Path(tempfile.mkdtemp(prefix="vqtune-pg-", dir=base_dir if probe.returncode == 0 else None))
    account.chown(workdir)
    return workdir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------ the server


def _url(password: str, port: int, database: str) -> str:
    from sqlalchemy.engine import URL

    return URL.create(DRIVER, username=PG_USER, password=password, host="127.0.0.1",
                      port=port, database=database).render_as_string(hide_password=False)


def admin_connect(url: str):
    """A psycopg2 connection in autocommit mode (for CREATE/DROP DATABASE) to the URL's server."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = psycopg2.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                            password=parsed.password, dbname=parsed.database, connect_timeout=10)
    conn.autocommit = True
    return conn


_RUNNING: set[subprocess.Popen] = set()


def _stop(server: subprocess.Popen) -> None:
    """Stop the postmaster for certain: SIGQUIT (immediate shutdown: it ends its backends and
    exits), then SIGKILL; waiting reaps it, so no zombie is left either."""
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        if server.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
    _RUNNING.discard(server)


@atexit.register
def _stop_leftovers() -> None:
    """Last resort if a context never ran its exit (e.g. the interpreter is shutting down)."""
    for server in list(_RUNNING):
        _stop(server)


def _wait_ready(server: subprocess.Popen, data: Path, log: Path, timeout: float = 30) -> None:
    """Wait as ``pg_ctl -w`` does: until postmaster.pid (PostgreSQL 10+) says "ready"."""
    pidfile = data / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited (code {server.returncode}) while starting:\n"
                               + log.read_text(errors="replace")[-3000:])
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 8 and lines[0].strip() == str(server.pid) and lines[7].strip() == "ready":
                return
        time.sleep(0.02)
    raise RuntimeError(f"postgres not ready after {timeout:.0f} s:\n" + log.read_text(errors="replace")[-3000:])


def _start(pg_bin: Path, data: Path, account: _RunAs, workdir: Path,
           port: int | None = None) -> tuple[subprocess.Popen, int]:
    """Start the postmaster on a free port (or ``port``) as a direct child of this process (so it can be
    waited for and reaped) and wait until it accepts connections."""
    log = workdir / "server.log"
    for attempt in range(5 if port is None else 1):  # another process may take the port between probe and bind
        port = port or _free_port()
        with open(log, "w") as out:
            server = subprocess.Popen(
                [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=workdir, env=_clean_env(workdir), **account.popen_kwargs(),
            )
        _RUNNING.add(server)
        try:
            _wait_ready(server, data, log)
            return server, port
        except RuntimeError:
            _stop(server)
            if attempt < 4 and "could not bind" in log.read_text(errors="replace"):
                continue
            raise
    raise AssertionError("unreachable")


class Server:
    """A throwaway server that a test can stop (immediate shutdown, as a crash or an outage) and start again
    on the same port and data."""

    def __init__(self, pg_bin: Path, data: Path, account: _RunAs, workdir: Path):
        self.pg_bin, self.data, self.account, self.workdir = pg_bin, data, account, workdir
        self.process, self.port = _start(pg_bin, data, account, workdir)
        self.url = ""

    def stop(self) -> None:
        _stop(self.process)

    def start(self) -> None:
        self.process, _ = _start(self.pg_bin, self.data, self.account, self.workdir, port=self.port)


@contextlib.contextmanager
def throwaway_postgres(base_dir: Path) -> Iterator[str]:
    """The SQLAlchemy URL of a throwaway server's database (see :func:`throwaway_server`)."""
    with throwaway_server(base_dir) as server:
        yield server.url


@contextlib.contextmanager
def throwaway_server(base_dir: Path) -> Iterator[Server]:
    """Start a new PostgreSQL cluster under base_dir (see module docstring) and yield it as a
    :class:`Server` whose ``url`` is the SQLAlchemy URL of its database ``vqtune``. On exit the server is stopped (immediate
    shutdown) and its files removed, whatever happened inside the block."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, postgres) not found in "
                                  "$VQTUNE_PG_BIN, PATH or /usr/lib/postgresql/*/bin")
    account = server_account()
    workdir = _workdir(Path(base_dir), account)
    data = workdir / "data"
    server: Server | None = None
    try:
        password = "pw" + secrets.token_hex(12)
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        account.chown(pwfile)
        _run([str(pg_bin / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C"],
             account, workdir)
        pwfile.unlink()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# throwaway test server (tests/postgres.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SERVER_SETTINGS.items())

        server = Server(pg_bin, data, account, workdir)
        with contextlib.closing(admin_connect(_url(password, server.port, "postgres"))) as conn:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{PG_DB}"')
        server.url = _url(password, server.port, PG_DB)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -------------------------------------------------------------------------------- fixtures


def _unavailable(reason: str) -> None:
    if os.environ.get("VQTUNE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"VQTUNE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(f"no throwaway PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    """SQLAlchemy URL (with password) of a throwaway PostgreSQL server shared by the session."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("psycopg2 is not installed")
    try:
        server = throwaway_postgres(tmp_path_factory.mktemp("postgres"))
        url = server.__enter__()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def fresh_postgres_db(postgres_url) -> Iterator[str]:
    """URL of a new, empty database on the session's server; dropped after the test."""
    from sqlalchemy.engine import make_url

    name = "t_" + secrets.token_hex(6)
    with contextlib.closing(admin_connect(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE (PostgreSQL 13+) ends connections the test's engines still hold open.
        with contextlib.closing(admin_connect(postgres_url)) as conn, conn.cursor() as cur:
            force = " WITH (FORCE)" if conn.server_version >= 130000 else ""
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
