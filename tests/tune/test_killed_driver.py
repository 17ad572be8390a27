"""`vqtune run` killed outright (SIGKILL: no cleanup) mid-search, then the same command again: the study ends
with exactly n_trials finished trials, none repeated, and the trials finished before the kill untouched."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.tune.conftest import TINY_BASE

N_TRIALS = 3
EPOCHS = 6
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _progress(db) -> tuple[int, list[int]]:
    """(finished trials, numbers of the running trials between their first and last epochs), read with plain
    sqlite3, read only."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            finished = connection.execute(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
            mid_run = connection.execute(
                "SELECT t.number FROM trials t JOIN trial_intermediate_values v ON v.trial_id = t.trial_id "
                "WHERE t.state = 'RUNNING' GROUP BY t.number HAVING count(*) <= ?", (EPOCHS - 2,)).fetchall()
    except sqlite3.Error:  # the driver has not created the tables yet
        return 0, []
    return finished, [number for (number,) in mid_run]


def _session(sid: int) -> dict[int, str]:
    """pid -> command of each live process in session ``sid``: the driver and all it started, Ray included."""
    listing = subprocess.run(["ps", "-s", str(sid), "-o", "pid=,stat=,args="], capture_output=True, text=True)
    processes = {}
    for line in listing.stdout.splitlines():
        pid, stat, command = line.split(None, 2)
        if not stat.startswith("Z"):
            processes[int(pid)] = command
    return processes


def _kill_session(sid: int) -> None:
    # Ray's workers run in process groups of their own: a killpg of the driver's group would miss them.
    for pid in _session(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _snapshot(study: optuna.Study, states) -> dict:
    return {t.number: (t.state, t.params, t.value, t.intermediate_values, t.user_attrs, t.datetime_complete)
            for t in study.get_trials(states=states)}


def _start(command, log_path, drivers) -> subprocess.Popen:
    """``command`` in a session of its own, so that every process it starts can be found and ended."""
    with open(log_path, "w") as log:
        driver = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=log_path.parent,
                                  stdout=log, stderr=log, start_new_session=True)
    drivers.append(driver)
    return driver


@pytest.fixture
def drivers():
    started = []
    yield started
    for driver in started:
        _kill_session(driver.pid)


def test_a_killed_search_resumes_to_exactly_n_trials(tmp_path, drivers):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    space = {
        "study": "killed",
        "n_trials": N_TRIALS,
        "sampler": {"type": "random", "seed": 7},
        "pruner": {"type": "none"},
        "perplexity": {"floor": 0},
        # the second run fails the killed run's trials 2 s after their last heartbeat
        "storage": {"url": url, "heartbeat_interval": 1, "grace_period": 2},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 2,
        "trial_dir": str(tmp_path / "trials"),
        "base": {**TINY_BASE, "data": {**TINY_BASE["data"], "crops_per_image": 16},
                 "optim": {**TINY_BASE["optim"], "epochs": EPOCHS}},
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    command = [sys.executable, "-m", "vqtune.cli", "run", str(path)]

    first = _start(command, tmp_path / "first.log", drivers)
    deadline = time.time() + 120
    while time.time() < deadline and not all(progress := _progress(db)):
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # the driver only: what it started is left to fend for itself
    first.wait(timeout=30)

    study = optuna.load_study(study_name="killed", storage=url)
    finished_before = _snapshot(study, FINISHED)
    # A worker may report one more epoch, then waits for its dead driver: it cannot end its trial.
    killed_mid_run = {number: study.trials[number].params for number in progress[1]}
    assert finished_before and killed_mid_run, (tmp_path / "first.log").read_text()[-3000:]

    second = _start(command, tmp_path / "second.log", drivers)  # at once
    assert second.wait(timeout=180) == 0, (tmp_path / "second.log").read_text()[-3000:]

    study = optuna.load_study(study_name="killed", storage=url)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == N_TRIALS
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    betas = [t.params["quantizer.beta"] for t in finished]
    assert len(set(betas)) == N_TRIALS  # no parameters trained twice to the end
    assert _snapshot(study, FINISHED).items() >= finished_before.items()  # finished before the kill: untouched
    for number, params in killed_mid_run.items():  # failed with its reason, then trained again once, afresh
        assert trials[number].state == TrialState.FAIL
        assert "its search stopped (no heartbeat for over" in trials[number].user_attrs["fail_reason"]
        [rerun] = [t for t in finished if t.params == params]
        assert rerun.number > number and rerun.user_attrs["retry_of"] == number
        assert "fail_reason" not in rerun.user_attrs
    # The killed run's trial workers noticed that their driver was gone and ended (they hold CPUs and GPUs).
    assert not [command for command in _session(first.pid).values() if "ImplicitFunc" in command]
