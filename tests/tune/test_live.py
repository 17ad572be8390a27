"""The live view as a user reads it in an 80-column terminal: nothing cut off, labels before values, and
trials that wait for a CPU or GPU shown as waiting, not running."""

import re
import warnings
from types import SimpleNamespace

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from rich.console import Console

from tests.tune.conftest import make_space
from vqtune.study import open_storage, open_study
from vqtune.tune._live import render, split_trials

PARAMS = {
    "optim.lr": (FloatDistribution(1e-4, 1e-2, log=True), 0.0023456789),
    "optim.batch_size": (CategoricalDistribution([16, 32, 64]), 32),
    "model.codebook_size": (CategoricalDistribution([32, 64, 128, 256, 512]), 512),
    "model.embedding_dim": (IntDistribution(4, 64), 17),
    "model.hidden": (IntDistribution(8, 256), 128),
    "model.residual_blocks": (IntDistribution(1, 4), 2),
    "quantizer.beta": (FloatDistribution(0.1, 2.0), 0.3141592),
    "quantizer.dead_code_steps": (IntDistribution(0, 100), 20),
    "quantizer.kind": (CategoricalDistribution(["vq", "fsq"]), "vq"),
}


def _study(tmp_path):
    space = make_space(tmp_path, n_trials=8)
    study = open_study(space, open_storage(space.storage), None)
    for value in (0.0123, 0.0456):
        study.add_trial(optuna.trial.create_trial(
            params={k: v for k, (_, v) in PARAMS.items()},
            distributions={k: d for k, (d, _) in PARAMS.items()}, value=value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):  # trials 2, 3, 4: RUNNING in the study
            study.ask()
    return space, study


def test_the_live_view_fits_80_columns_with_every_parameter_and_waiting_trials(tmp_path):
    space, study = _study(tmp_path)
    ray_trials = [
        SimpleNamespace(trial_id="a", status="RUNNING", config={"number": 2}),
        SimpleNamespace(trial_id="b", status="RUNNING", config={"number": 3}),  # started, no epoch yet
        SimpleNamespace(trial_id="c", status="PENDING", config={"number": 4}),  # no free CPU for it
        SimpleNamespace(trial_id="d", status="TERMINATED", config={"number": 0}),
    ]
    results = {"a": {"optuna_trial": 2, "epoch": 3, "val_recon_mse": 0.0321, "val_perplexity": 12.5,
                     "val_active_codes": 40.0, "train_images_per_s": 900.0}}
    running, waiting = split_trials(ray_trials, results)
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(render(study, space, 8, running, waiting))
    text = console.export_text()
    lines = text.splitlines()

    assert all(len(line) <= 80 for line in lines), text
    assert re.search(r"finished 2/8 +\(complete 2 +pruned 0 +running 2 +waiting 1\)", lines[0]), lines[0]
    assert "best #0  val_recon_mse 0.0123" in text
    flat = " ".join(text.split())
    for name, (_, value) in PARAMS.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        assert f"{name}={shown}" in flat, name
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip().startswith("#")}
    assert rows["#2"][:2] == ["3/4", "0.0321"]
    assert rows["#3"][0] == "0/4"
    assert rows["#4"] == ["waiting"]
    assert "#0" not in rows


def test_enqueued_trials_are_queued_and_every_count_follows_its_label(tmp_path):
    space, study = _study(tmp_path)
    study.enqueue_trial({"optim.lr": 0.002})
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    console.print(render(study, space, 8))
    text = console.export_text()
    lines = text.splitlines()
    # every count after its label; an enqueued trial is queued, not waiting for resources
    assert lines[0].rstrip() == "study tiny  finished 2/8  (complete 2  pruned 0  running 3  queued 1)"
    assert lines[1].rstrip() == "best #0  val_recon_mse 0.0123"
