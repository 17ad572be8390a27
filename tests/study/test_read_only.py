"""Commands that only read a study change nothing: not another program's database, not a study's file."""

import sqlite3

import optuna
import pytest

from vqtune.cli import main


def _other_program_db(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
    db.close()


@pytest.mark.parametrize("argv", [["studies"], ["trials", "--study", "x"], ["export", "--study", "x", "-o", "x.yaml"],
                                  ["report", "--study", "x", "-o", "x.html"], ["dashboard"],
                                  ["delete", "--study", "x", "--yes"]])
def test_reading_another_programs_database_changes_nothing(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "some-other-app.db"
    _other_program_db(path)
    before = path.read_bytes()
    assert main([*argv, "--storage", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"vqtune: error: storage sqlite:///{path}: {path} holds no vqtune study (no Optuna tables); "
                   "give the --storage of a study (vqtune run creates one)")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some-other-app.db"]  # no -wal, no output file


def test_reading_a_study_leaves_its_file_as_it_was(tmp_path, capsys):
    path = tmp_path / "study.db"
    optuna.create_study(study_name="kept", storage=f"sqlite:///{path}").optimize(lambda t: t.suggest_float("x", 0, 1),
                                                                                  n_trials=2)
    optuna.storages.RDBStorage(f"sqlite:///{path}").engine.dispose()
    before = path.read_bytes()
    assert main(["studies", "--storage", f"sqlite:///{path}"]) == 0
    assert "kept" in capsys.readouterr().out
    assert path.read_bytes() == before  # not even switched to WAL
    assert main(["trials", "kept", "--storage", f"sqlite:///{path}"]) == 0
    assert path.read_bytes() == before
