"""A trial whose worker process dies is run again by Ray from its last epoch checkpoint, in either stage."""

import json
import os
import signal
import sqlite3
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE, make_space
from vqtune.config import TrainConfig
from vqtune.study import open_storage
from vqtune.train import fit
from vqtune.tune import run_study

EPOCHS = 8


def _running_pid(db) -> tuple[int, int] | None:
    """(pid, epochs reported) of the running trial, read with plain sqlite3 (no table creation race)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            pid = connection.execute(
                "SELECT value_json FROM trial_user_attributes WHERE key = 'pid'").fetchone()
            epochs = connection.execute("SELECT count(*) FROM trial_intermediate_values").fetchone()[0]
    except sqlite3.Error:
        return None
    return (json.loads(pid[0]), epochs) if pid else None


def _base(stage: str, tmp_path) -> tuple[dict, dict, str]:
    """The search's base config, its space and the metrics file of the stage under test."""
    base = {**TINY_BASE, "data": {**TINY_BASE["data"], "crops_per_image": 96},
            "optim": {**TINY_BASE["optim"], "epochs": EPOCHS}}
    if stage == "vqvae":
        return base, {"optim.lr": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True}}, "metrics.jsonl"
    stage1 = fit(TrainConfig.model_validate({**base, "optim": {**base["optim"], "epochs": 1}, "device": "cpu",
                                             "run_dir": str(tmp_path / "stage1")}))
    prior = {"vqvae_checkpoint": str(stage1.run_dir / "best.pt"), "channels": 16, "layers": 3, "epochs": EPOCHS,
             "batch_size": 16}
    return {**base, "prior": prior}, {"prior.lr": {"type": "float", "low": 1e-3, "high": 3e-3}}, "prior_metrics.jsonl"


@pytest.mark.parametrize("stage", ["vqvae", "prior"])
def test_killed_worker_is_restarted_from_its_checkpoint(ray_session, tmp_path, stage):
    base, params, metrics_file = _base(stage, tmp_path)
    space = make_space(tmp_path, n_trials=1, base=base, space=params, pruner={"type": "none"},
                       perplexity={"floor": 0}, resources={"cpu": 1, "gpu": 0, "max_restarts": 2},
                       objective={"metric": "val_recon_mse" if stage == "vqvae" else "val_nll"})
    db = tmp_path / "studies.db"
    killed = {}

    def kill_mid_run():
        deadline = time.time() + 120
        while time.time() < deadline:
            found = _running_pid(db)
            if found and 2 <= found[1] < EPOCHS:
                os.kill(found[0], signal.SIGKILL)
                killed.update(pid=found[0], after_epochs=found[1])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    run_study(space, console=Console(file=open("/dev/null", "w")))
    killer.join()

    assert killed, "the worker was not caught mid-run"
    trials = optuna.load_study(study_name=space.study, storage=open_storage(space.storage)).get_trials()
    assert len(trials) == 1  # the same Optuna trial, not a new one
    trial = trials[0]
    assert trial.state == TrialState.COMPLETE and trial.number == 0
    assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))
    assert trial.user_attrs["restarts"] == 1 and trial.user_attrs["pid"] != killed["pid"]
    # resumed, not retrained: each epoch ran once
    run_dir = trial.user_attrs["run_dir"]
    epochs = [json.loads(line)["epoch"] for line in open(os.path.join(run_dir, metrics_file))]
    assert epochs == list(range(1, EPOCHS + 1))
