"""`vqtune run` over the prior of one trained VQ-VAE: the same storage, states and pruning, on val NLL."""

import optuna
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE
from vqtune.config import TrainConfig
from vqtune.train import fit
from vqtune.study import open_storage
from vqtune.tune import run_study


def test_prior_search_records_honest_states(ray_session, space_factory, tmp_path):
    # Without dead-code restarts this tiny VQ-VAE uses a handful of codes: a prior that learns at all finds
    # that quickly, one with a far too small learning rate stays near log K.
    stage1 = fit(TrainConfig.model_validate({
        **TINY_BASE, "quantizer": {"dead_code_steps": 0}, "device": "cpu", "run_dir": str(tmp_path / "vq"),
    }))
    checkpoint = stage1.run_dir / "best.pt"
    space = space_factory(
        study="prior",
        n_trials=3,
        max_concurrent=1,
        objective={"metric": "val_nll"},
        pruner={"type": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 1}},
        base={**TINY_BASE, "prior": {"vqvae_checkpoint": str(checkpoint), "channels": 16, "layers": 2,
                                     "batch_size": 32, "epochs": 3}},
        space={
            "prior.layers": {"type": "int", "low": 1, "high": 3},
            "prior.lr": {"type": "categorical", "choices": [3e-3, 1e-6]},
            "prior.dropout": {"type": "float", "low": 0.0, "high": 0.2},
        },
    )
    study = optuna.create_study(study_name="prior", storage=open_storage(space.storage))
    study.enqueue_trial({"prior.layers": 2, "prior.lr": 3e-3, "prior.dropout": 0.0})
    study.enqueue_trial({"prior.layers": 2, "prior.lr": 1e-6, "prior.dropout": 0.0})  # barely learns: pruned

    run_study(space, console=Console(file=open("/dev/null", "w")))

    trials = optuna.load_study(study_name="prior", storage=open_storage(space.storage)).get_trials()
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 3
    first, slow = trials[0], trials[1]
    assert first.state == TrialState.COMPLETE and sorted(first.intermediate_values) == [1, 2, 3]
    assert first.value == first.intermediate_values[3] == first.user_attrs["val_nll"]
    assert 0 < first.user_attrs["val_bits_per_dim"] < 8
    assert slow.state == TrialState.PRUNED and slow.user_attrs["pruned_by"] == "pruner"
    assert sorted(slow.intermediate_values) == list(range(1, slow.user_attrs["pruned_epoch"] + 1))
    assert "perplexity" not in first.user_attrs  # stage-1 figures are not made up for a prior trial
