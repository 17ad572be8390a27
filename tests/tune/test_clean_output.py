"""What ``vqtune run`` prints stays what it promises when Ray has something to say: after a trial's worker
process dies, ``--format json`` still leaves one JSON document on stdout (Ray's line about the dead worker goes to
stderr), and a database turned read-only mid-search ends the search in one line that says so, without Ray's
tracebacks behind it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.tune.conftest import cli_search

EPOCHS = 6


def _read(database: Path, query: str):
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute(query).fetchone()
    except sqlite3.Error:  # not created yet
        return None


def _running_worker(database: Path) -> int | None:
    """The pid of the running trial's worker once it has reported an epoch and has more to go."""
    pid = _read(database, "SELECT a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id "
                          "WHERE a.key = 'pid' AND t.state = 'RUNNING'")
    epochs = _read(database, "SELECT count(*) FROM trial_intermediate_values")
    return json.loads(pid[0]) if pid and epochs and 1 <= epochs[0] < EPOCHS else None


def test_json_stays_one_document_when_a_worker_dies(tmp_path):
    database = tmp_path / "studies.db"
    command, env = cli_search(tmp_path, "died", f"sqlite:///{database}", tmp_path / "trials", 1, epochs=EPOCHS)
    driver = subprocess.Popen([*command, "--format", "json"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.time() + 240
        while killed is None and driver.poll() is None and time.time() < deadline:
            killed = _running_worker(database)
            if killed is None:
                time.sleep(0.05)
        assert killed is not None, "the trial's worker was not caught mid-run"
        os.kill(killed, signal.SIGKILL)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, out[-2000:] + err[-3000:]
    summary = json.loads(out)  # the whole of stdout: one document, nothing before or after it
    assert summary["counts"]["complete"] == 1 and summary["best"]["number"] == 0
    assert "\x1b[" not in out  # no coloured line of Ray's
    assert "worker died" in err  # Ray's line on why, kept on stderr


def _assert_one_line(returncode: int, out: str, err: str, said: str) -> None:
    """The search ended with exit 2 and one line naming the storage, after nothing but its warnings."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("vqtune: warning: ")]
    assert returncode == 2, out[-2000:] + err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("vqtune: error: storage ") and said in lines[0], lines[0]
    assert "the same command continues the search" in lines[0]


def test_a_postgresql_database_turned_read_only_mid_search_ends_in_one_line(tmp_path, fresh_postgres_db):
    import psycopg2

    from tests.postgres import admin_connect

    command, env = cli_search(tmp_path, "readonly", fresh_postgres_db, tmp_path / "trials", 3, epochs=2)
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    admin = admin_connect(fresh_postgres_db)
    try:
        with admin.cursor() as cursor:
            while driver.poll() is None:
                try:
                    cursor.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
                    if cursor.fetchone()[0]:
                        break
                except psycopg2.errors.UndefinedTable:  # the search has not created the study's tables yet
                    pass
                time.sleep(0.05)
            # as a primary that became a standby: every session's next transaction is read-only
            cursor.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            cursor.execute("SELECT pg_reload_conf()")
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        with admin.cursor() as cursor:
            cursor.execute("ALTER SYSTEM RESET default_transaction_read_only")
            cursor.execute("SELECT pg_reload_conf()")
        admin.close()
    _assert_one_line(driver.returncode, out, err, "turned read-only during the search (")
    assert "read-only transaction" in err
