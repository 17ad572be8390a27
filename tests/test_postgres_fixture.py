"""The throwaway PostgreSQL server of tests/postgres.py: Optuna can use it, only loopback reaches it,
and it is gone after its context exits, even when the body raised."""

import errno
import os
import socket
from pathlib import Path

import optuna
import psycopg2
import pytest
from sqlalchemy.engine import make_url

from tests.postgres import admin_connect, find_pg_bin, throwaway_postgres


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    return (x - 1.0) ** 2


def test_optuna_study_round_trips_through_postgres(fresh_postgres_db):
    writer = optuna.storages.RDBStorage(fresh_postgres_db)
    try:
        assert optuna.get_all_study_names(writer) == []  # a fresh database: no one else's studies
        study = optuna.create_study(study_name="roundtrip", storage=writer,
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(_objective, n_trials=3)
        written = [(t.number, t.params, t.value) for t in study.trials]
    finally:
        writer.engine.dispose()

    reader = optuna.storages.RDBStorage(fresh_postgres_db)
    try:
        loaded = optuna.load_study(study_name="roundtrip", storage=reader)
        assert [(t.number, t.params, t.value) for t in loaded.trials] == written
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in loaded.trials)
        assert loaded.best_value == min(value for _, _, value in written)
    finally:
        reader.engine.dispose()


def test_url_carries_a_password_the_server_checks(postgres_url):
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg2" and url.host == "127.0.0.1"
    assert url.password and url.password in postgres_url
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        admin_connect(url.set(password="wrong-" + url.password).render_as_string(hide_password=False))


def _non_loopback_ipv4() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent; this only picks a route
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _refused(family: int, host: str, port: int) -> bool:
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # e.g. no IPv6 in this kernel: nothing can connect that way either
        return True
    with sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH)


def test_server_listens_on_loopback_only(postgres_url):
    url = make_url(postgres_url)
    with admin_connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("SHOW unix_socket_directories")
        assert cur.fetchone()[0] == ""
    conn.close()
    assert not _refused(socket.AF_INET, "127.0.0.1", url.port)
    if socket.has_ipv6:
        assert _refused(socket.AF_INET6, "::1", url.port)
    other = _non_loopback_ipv4()
    if other is not None:
        assert _refused(socket.AF_INET, other, url.port), f"server reachable on {other}"


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


@pytest.mark.skipif(find_pg_bin() is None, reason="no PostgreSQL binaries")
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_server_is_stopped_and_removed_when_the_body_raises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with throwaway_postgres(tmp_path) as url:
            with admin_connect(url) as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                postmaster = _ppid(cur.fetchone()[0])
                cur.execute("SHOW data_directory")
                data_dir = Path(cur.fetchone()[0])
            conn.close()
            assert data_dir.is_dir()
            raise RuntimeError("boom")
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)  # gone and reaped: not even a zombie is left
    assert not data_dir.exists() and not data_dir.parent.exists()
    assert _refused(socket.AF_INET, "127.0.0.1", make_url(url).port)
