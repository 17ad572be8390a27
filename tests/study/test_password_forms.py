"""A storage password stays secret in every form of URL SQLAlchemy accepts: after the user name, with an @ not
written %40, and as a query argument (?password=). Not in a dry run's lines, not in an error's line, not in the
search space a study records."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from tests.test_safe_defaults import one_line, space_file
from vqtune.cli import main
from vqtune.config import Storage
from vqtune.study import SPACE_ATTR, mask, open_storage, open_study

SECRET = "Sekr3tPw"


@pytest.mark.parametrize("url, masked", [
    (f"postgresql+psycopg2://u@db.example:5432/db?password={SECRET}",
     "postgresql+psycopg2://u@db.example:5432/db?password=***"),
    (f"postgresql+psycopg2://db.example/db?user=u&sslpassword={SECRET}&sslmode=require",
     "postgresql+psycopg2://db.example/db?sslmode=require&sslpassword=***&user=u"),
    (f"postgresql+psycopg2://u:{SECRET[:3]}@{SECRET[3:]}@db.example:5432/db",
     "postgresql+psycopg2://u:***@db.example:5432/db"),
    (f"postgresql+psycopg2://u:{SECRET[:3]}@{SECRET[3:]}:1@db.example:5432/db",  # not even parsed by SQLAlchemy
     "postgresql+psycopg2://u:***@db.example:5432/db"),
    (f"sqlite:////studies/vqtune.db?password={SECRET}", "sqlite:////studies/vqtune.db?password=***"),
])
def test_mask_hides_the_password_in_every_form(url, masked):
    assert mask(url) == masked


def _leaks(text: str) -> bool:
    """Whether ``text`` holds the secret, or the part of it after an unencoded @."""
    return SECRET in text or SECRET[3:] in text


def test_a_dry_run_with_the_password_in_the_query_never_prints_it(fresh_postgres_db, tmp_path, capsys):
    real = make_url(fresh_postgres_db)
    url = real.set(password=None).update_query_dict({"password": real.password}).render_as_string(
        hide_password=False)
    space = space_file(tmp_path / "space.yaml", n_trials=1)
    assert main(["run", str(space), "--storage", url, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert f"storage: {real.set(password=None).render_as_string()}?password=***" in out
    assert real.password not in out + err


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg2://vqtune:{SECRET[:3]}@{SECRET[3:]}@127.0.0.1:1/vqtune",
    f"postgresql+psycopg2://vqtune:{SECRET[:3]}@{SECRET[3:]}:1@127.0.0.1:1/vqtune",
])
@pytest.mark.parametrize("dry_run", [["--dry-run"], []])
def test_an_unencoded_at_in_the_password_is_refused_in_one_line(url, dry_run, tmp_path, capsys):
    space = space_file(tmp_path / "space.yaml", n_trials=1)
    assert main(["run", str(space), "--storage", url, *dry_run]) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert not _leaks(out + err), out + err
    assert "postgresql+psycopg2://vqtune:***@127.0.0.1:1/vqtune" in line
    assert "%40" in line or "not a database URL" in line
    assert not (tmp_path / "trials").exists()


@pytest.mark.parametrize("command", [["run", "SPACE", "--dry-run"], ["run", "SPACE"], ["studies"]])
def test_a_failing_connection_with_the_password_in_the_query_never_prints_it(command, tmp_path, capsys):
    url = f"postgresql+psycopg2://vqtune@127.0.0.1:1/vqtune?password={SECRET}"
    space = space_file(tmp_path / "space.yaml", n_trials=1)
    argv = [str(space) if arg == "SPACE" else arg for arg in command]
    assert main([*argv, "--storage", url]) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert "cannot connect" in line and "?password=***" in line
    assert not _leaks(out + err), out + err


def test_a_wrong_password_in_the_query_is_not_printed(fresh_postgres_db, tmp_path, capsys):
    url = make_url(fresh_postgres_db).set(password=None).update_query_dict({"password": SECRET})
    assert main(["studies", "--storage", url.render_as_string(hide_password=False)]) == 2
    out, err = capsys.readouterr()
    assert "password authentication failed" in one_line(err)
    assert not _leaks(out + err)


def test_a_study_records_its_space_with_the_query_password_masked(tmp_path):
    from tests.tune.conftest import make_space

    database = tmp_path / "studies.db"
    space = make_space(tmp_path, storage={"url": f"sqlite:///{database}?password={SECRET}", "heartbeat_interval": 1,
                                          "grace_period": 3})
    study = open_study(space, open_storage(space.storage), None)
    assert study.user_attrs[SPACE_ATTR]["storage"]["url"] == f"sqlite:///{database}?password=***"
    with sqlite3.connect(database) as db:  # the write-ahead log folded into the file, then its bytes read
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [p for p in tmp_path.iterdir() if p.name.startswith("studies.db")]
    assert [p.name for p in files if SECRET.encode() in p.read_bytes()] == []


def test_a_study_on_postgresql_records_no_query_password(fresh_postgres_db, tmp_path):
    from tests.tune.conftest import make_space

    real = make_url(fresh_postgres_db)
    url = real.set(password=None).update_query_dict({"password": real.password}).render_as_string(
        hide_password=False)
    space = make_space(tmp_path, storage={"url": url, "heartbeat_interval": 1, "grace_period": 3})
    open_study(space, open_storage(Storage(url=url)), None)
    engine = sqlalchemy.create_engine(fresh_postgres_db)
    try:
        with engine.connect() as connection:
            # every value in full (a row's repr cuts long strings short)
            recorded = " ".join(connection.execute(
                sqlalchemy.text("SELECT value_json FROM study_user_attributes")).scalars())
    finally:
        engine.dispose()
    assert "password=***" in recorded
    assert real.password not in recorded


def test_a_storage_value_that_fails_validation_is_not_echoed(tmp_path, capsys):
    # a URL written into the wrong key of the storage section: the error names the key, never the value
    space = tmp_path / "space.yaml"
    space.write_text(f'study: s\nstorage: {{url: "sqlite:///{tmp_path}/s.db", heartbeat_interval: '
                     f'"postgresql://u:{SECRET}@h/db"}}\nspace:\n  optim.lr: {{type: float, low: 1.0e-4, high: 1.0e-3}}\n')
    assert main(["run", str(space), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "storage.heartbeat_interval" in err and SECRET not in out + err
    assert main(["run", str(space), "--dry-run", "--set", f"storage.url=[{SECRET}]"]) == 2
    assert SECRET not in "".join(capsys.readouterr())
