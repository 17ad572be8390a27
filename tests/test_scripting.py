"""The read-only commands in scripts: --format json/csv parsed back, --study everywhere, --debug after the
command, and `vqtune delete`'s refusals (no Ray: studies made with Optuna directly)."""

import io
import json
import warnings

import optuna
import pandas as pd
import pytest
import sqlalchemy
from optuna.trial import TrialState

from vqtune.cli import main
from vqtune.config import Storage
from vqtune.study import open_storage


@pytest.fixture
def url(tmp_path):
    """A storage with study 'seen': a complete trial with an infinite attribute, a failed one (no value)."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="seen", storage=open_storage(Storage(url=url)))
    trial = study.ask()
    trial.suggest_float("optim.lr", 1e-4, 1e-2, log=True)
    trial.set_user_attr("val_perplexity", float("inf"))
    study.tell(trial, 0.25)
    study.tell(study.ask(), state=TrialState.FAIL)
    return url


def test_trials_and_studies_as_json_and_csv(url, capsys):
    assert main(["trials", "--study", "seen", "--storage", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL"]
    assert rows[0]["value"] == 0.25 and rows[1]["value"] is None  # NaN as null
    assert rows[0]["val_perplexity"] is None  # inf as null
    assert pd.Timestamp(rows[0]["datetime_start"]) <= pd.Timestamp(rows[0]["datetime_complete"])  # ISO strings
    assert 1e-4 <= rows[0]["optim.lr"] <= 1e-2

    assert main(["trials", "--study", "seen", "--storage", url, "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame["state"]) == ["COMPLETE", "FAIL"] and "optim.lr" in frame

    assert main(["studies", "--storage", url, "--format", "json"]) == 0
    (study,) = json.loads(capsys.readouterr().out)
    assert study["study"] == "seen" and study["complete"] == 1 and study["fail"] == 1 and study["best"] == 0.25
    assert main(["studies", "--storage", url, "--format", "csv"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out))["study"].tolist() == ["seen"]


def test_study_flag_everywhere_and_the_old_positional_form(url, tmp_path, capsys):
    assert main(["report", "--study", "seen", "--storage", url, "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").exists()
    assert main(["trials", "--storage", url, "seen"]) == 0
    captured = capsys.readouterr()
    assert "COMPLETE" in captured.out and "deprecated; use `vqtune trials --study seen`" in captured.err
    assert main(["trials", "--storage", url]) == 2
    assert capsys.readouterr().err == ("vqtune: error: vqtune trials needs a study: add --study NAME "
                                       "(`vqtune studies` lists them)\n")
    assert main(["trials", "seen", "--study", "other", "--storage", url]) == 2
    assert "give only --study NAME" in capsys.readouterr().err


def test_debug_after_the_command(url):
    with pytest.raises(Exception, match="no study 'nope'"):  # the traceback, not the one-line error
        main(["trials", "--study", "nope", "--storage", url, "--debug"])
    with pytest.raises(Exception, match="no study 'nope'"):
        main(["--debug", "trials", "--study", "nope", "--storage", url])


def test_delete_refuses_without_confirmation_or_while_a_run_uses_the_study(url, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script's stdin, no terminal
    assert main(["delete", "--study", "seen", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stdin is not a terminal" in err and "add --yes" in err

    storage = open_storage(Storage(url=url))
    study = optuna.load_study(study_name="seen", storage=storage)
    with warnings.catch_warnings():  # a run asks and beats outside study.optimize, as vqtune's driver does
        warnings.simplefilter("ignore")
        running = study.ask()
    storage.record_heartbeat(running._trial_id)  # a live run's trial
    assert main(["delete", "--study", "seen", "--storage", url, "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"trials with a fresh heartbeat: {running.number})" in err
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["seen"]

    # the same trial of a run that died long ago (its heartbeat stale) no longer holds the study
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'"))
    assert main(["delete", "--study", "seen", "--storage", url, "--yes"]) == 0
    assert "deleted study 'seen'" in capsys.readouterr().out
    assert optuna.get_all_study_summaries(open_storage(Storage(url=url))) == []


def test_delete_asks_on_a_terminal(url, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal("no\n"))
    assert main(["delete", "--study", "seen", "--storage", url]) == 1
    assert "nothing was deleted" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Terminal("seen\n"))
    assert main(["delete", "--study", "seen", "--storage", url]) == 0
    assert optuna.get_all_study_summaries(open_storage(Storage(url=url))) == []
