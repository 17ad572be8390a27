"""Ctrl-C in the middle of `vqtune run`, then the same command again: the study ends whole, no duplicates."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import yaml
from optuna.trial import TrialState

from tests.tune.conftest import TINY_BASE


def _an_epoch_was_reported(db) -> bool:
    # Plain sqlite3, read only: opening an Optuna storage here could race the driver creating the tables.
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT count(*) FROM trial_intermediate_values").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def test_interrupted_search_resumes_without_duplicates(tmp_path):
    db = tmp_path / "s.db"
    space = {
        "study": "interrupted",
        "n_trials": 3,
        "sampler": {"type": "random", "seed": 3},
        "pruner": {"type": "none"},
        "storage": {"url": f"sqlite:///{db}", "heartbeat_interval": 1, "grace_period": 30},
        "resources": {"cpu": 1, "gpu": 0},
        "max_concurrent": 1,
        "trial_dir": str(tmp_path / "trials"),
        "base": {**TINY_BASE, "optim": {**TINY_BASE["optim"], "epochs": 30}},
        "space": {"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    command = [sys.executable, "-m", "vqtune.cli", "run", str(path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not _an_epoch_was_reported(db):
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) == 130  # interrupted, not a normal end
    assert "interrupted" in driver.stderr.read().decode().splitlines()[-1]

    study = optuna.load_study(study_name="interrupted", storage=f"sqlite:///{db}")
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert [t.user_attrs.get("fail_reason") for t in interrupted] == ["the search was interrupted"]
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1  # its parameters, queued again

    space["base"]["optim"]["epochs"] = 2
    path.write_text(yaml.safe_dump(space))
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="interrupted", storage=f"sqlite:///{db}")
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    betas = [t.params["quantizer.beta"] for t in finished]
    assert len(set(betas)) == 3  # no duplicate parameters
    assert interrupted[0].params["quantizer.beta"] in betas  # the interrupted trial was run again
