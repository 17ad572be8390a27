"""A failed trial's record tells what became of its parameters: queued again only when they were, else why not
(a retry is not retried); and ``vqtune trials --unfinished`` lists the parameters drawn that no trial finished."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from optuna.trial import TrialState

from tests.tune.conftest import make_space
from vqtune.cli import main
from vqtune.study import fail_stale_trials, open_storage, open_study, suggest

GRACE = 2

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def _beat_then_die(study: optuna.Study, space) -> optuna.trial.Trial:
    """A trial that drew its parameters and beat once, then its driver died (it stays RUNNING)."""
    trial = study.ask()
    suggest(trial, space)
    study._storage.record_heartbeat(trial._trial_id)
    return trial


def test_a_dead_retry_is_not_queued_again_its_record_says_so_and_trials_lists_it(tmp_path, capsys):
    space = make_space(tmp_path, storage={"url": f"sqlite:///{tmp_path}/studies.db", "heartbeat_interval": 1,
                                          "grace_period": GRACE})
    study = open_study(space, open_storage(space.storage), None)
    first = _beat_then_die(study, space)
    done = study.ask()  # a finished trial: its parameters are not listed
    suggest(done, space)
    study.tell(done, 0.5)
    time.sleep(GRACE + 1.5)  # the database clock counts whole seconds
    assert fail_stale_trials(study, GRACE) == [first.number]
    reason = study.trials[first.number].user_attrs["fail_reason"]
    assert reason.endswith("; its parameters were queued again"), reason
    [queued] = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs["retry_of"] == first.number

    retry = _beat_then_die(study, space)  # the next run takes the retry from the queue, and dies too
    assert retry.number == queued.number and retry.params == first.params
    time.sleep(GRACE + 1.5)  # the database clock counts whole seconds
    assert fail_stale_trials(study, GRACE) == [retry.number]
    reason = study.trials[retry.number].user_attrs["fail_reason"]
    assert "queued again" not in reason.replace("not queued again", ""), reason
    assert f"not queued again: it was the retry of trial {first.number}" in reason
    assert not study.get_trials(states=(TrialState.WAITING,))  # retried once, not twice

    from vqtune.study import unfinished_params

    frame = unfinished_params(study)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert {k: row[k] for k in first.params} == first.params
    assert row["trials"] == [first.number, retry.number] and row["state"] == "FAIL" and not row["queued"]
    assert row["fail_reason"] == reason

    url = ["--storage", space.storage.url]
    assert main(["trials", "--study", space.study, *url, "--unfinished"]) == 0
    out = capsys.readouterr().out
    assert "optim.lr" in out and "retry of trial" in out and f"{done.params['optim.lr']:.5g}" not in out
    assert main(["trials", "--study", space.study, *url, "--unfinished", "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["trials"] == [first.number, retry.number]
    assert listed["optim.lr"] == pytest.approx(first.params["optim.lr"])


def test_a_study_whose_parameters_all_finished_lists_none(tmp_path, capsys):
    space = make_space(tmp_path)
    study = open_study(space, open_storage(space.storage), None)
    trial = study.ask()
    suggest(trial, space)
    study.tell(trial, 0.5)
    from vqtune.study import unfinished_params

    assert unfinished_params(study).empty
    assert main(["trials", "--study", space.study, "--storage", space.storage.url, "--unfinished"]) == 0
    assert "no parameters left unfinished" in capsys.readouterr().out
