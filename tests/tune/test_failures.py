"""A trial whose loss turns NaN or infinite, whose training raises, or whose GPU runs out of memory ends as FAIL
with a reason the user can act on, and the search goes on to its n_trials."""

import math
import os
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from rich.console import Console

from tests.tune.conftest import TINY_BASE
from vqtune.config import PriorConfig
from vqtune.errors import TrainingDiverged
from vqtune.study import open_storage
from vqtune.train import _prior, _vqvae, fit
from vqtune.tune import run_study

# A trial whose quantizer.beta is one of these meets that fault in its second epoch; random samples never land
# exactly on them.
FAULTS = {0.111: "nan", 0.222: "inf", 0.333: "error", 0.444: "oom"}
OOM_MESSAGE = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.79 GiB of which "
               "1.02 GiB is free.")


def poison(model: torch.nn.Module, fault: str, split: str = "train") -> None:
    """From its second epoch on, ``model`` meets ``fault`` in the forward passes of ``split`` (train or val).

    A NaN or infinite training loss is added to the quantizer's loss (a constant: the gradients stay finite, the
    loss the trainer sees is what it is); a NaN or infinite validation loss to the reconstruction.
    """
    seen = {"epoch": 1, "training": True}

    def hook(module, inputs, out):
        if module.training and not seen["training"]:  # training again after an evaluation: the next epoch
            seen["epoch"] += 1
        seen["training"] = module.training
        if seen["epoch"] < 2 or module.training != (split == "train"):
            return None
        if fault == "error":
            raise RuntimeError("index 70 is out of bounds for dimension 0 with size 64")
        if fault == "oom":
            raise torch.cuda.OutOfMemoryError(OOM_MESSAGE)
        value = math.nan if fault == "nan" else math.inf
        if split == "val":
            return out._replace(reconstruction=out.reconstruction + value)
        return out._replace(vq=out.vq._replace(loss=out.vq.loss + value))

    model.register_forward_hook(hook)


def poisoning(fault_of, split: str = "train"):
    """The trainer's build_model, but the model of ``config`` meets ``fault_of(config)`` (None: no fault)."""
    build = _vqvae.build_model

    def build_model(config, in_channels):
        model = build(config, in_channels)
        if fault_of(config):
            poison(model, fault_of(config), split)
        return model

    return build_model


def inject_faults() -> None:
    """Ray worker setup: the models of trials whose quantizer.beta is in FAULTS are poisoned."""
    _vqvae.build_model = poisoning(lambda config: FAULTS.get(config.quantizer.beta))


def _small(config):
    return config.model_copy(update={"data": config.data.model_copy(update={"crops_per_image": 16})})


@pytest.mark.parametrize(("fault", "split"), [("inf", "train"), ("nan", "val"), ("inf", "val")])
def test_the_trainer_stops_on_a_non_finite_loss(tiny_config, monkeypatch, fault, split):
    monkeypatch.setattr(_vqvae, "build_model", poisoning(lambda config: fault, split))
    with pytest.raises(TrainingDiverged) as caught:
        fit(_small(tiny_config))
    assert caught.value.epoch == 2
    which = "training" if split == "train" else "validation"
    assert str(caught.value).startswith(f"epoch 2: {which} loss became {fault}; lower optim.lr")
    assert len((tiny_config.run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 1 is kept


def test_the_prior_stops_on_a_non_finite_validation_loss(tiny_config, monkeypatch):
    stage1 = fit(_small(tiny_config).model_copy(update={"optim": tiny_config.optim.model_copy(
        update={"epochs": 1})}))
    build = _prior.build_prior

    def build_prior(prior, codebook_size, top_downsample=None):
        model = build(prior, codebook_size, top_downsample)
        model.register_forward_hook(lambda module, inputs, out: None if module.training else out * math.nan)
        return model

    monkeypatch.setattr(_prior, "build_prior", build_prior)
    config = tiny_config.model_copy(update={
        "prior": PriorConfig(vqvae_checkpoint=stage1.run_dir / "best.pt", channels=8, layers=2, epochs=2),
        "run_dir": tiny_config.run_dir.parent / "prior",
    })
    with pytest.raises(TrainingDiverged, match=r"^epoch 1: prior validation loss became nan; lower prior.lr"):
        fit(config)


@pytest.fixture
def ray_with_faults():
    """A Ray session (as tests/conftest.py starts it) whose workers inject FAULTS; the shared one comes back after."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    shared = ray.is_initialized()
    ray.shutdown()
    options = {"num_cpus": 2, "num_gpus": 2, "include_dashboard": False, "log_to_driver": False,
               "logging_level": "ERROR"}
    root = str(Path(__file__).parents[2])  # the hook is loaded before the driver's sys.path reaches the worker
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    ray.init(**options, runtime_env={"worker_process_setup_hook": inject_faults, "env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()
    if shared:
        ray.init(**options)


def test_failing_trials_are_recorded_with_their_reason_and_the_search_finishes(ray_with_faults, space_factory):
    base = {**TINY_BASE, "data": {**TINY_BASE["data"], "crops_per_image": 16},
            "optim": {**TINY_BASE["optim"], "epochs": 2}}
    space = space_factory(
        n_trials=5,
        base=base,
        pruner={"type": "none"},
        space={"quantizer.beta": {"type": "float", "low": 0.1, "high": 1.0, "log": True}},
    )
    study = optuna.create_study(study_name=space.study, storage=open_storage(space.storage))
    for beta in FAULTS:
        study.enqueue_trial({"quantizer.beta": beta})

    result = run_study(space, console=Console(file=open(os.devnull, "w")))

    trials = optuna.load_study(study_name=space.study, storage=open_storage(space.storage)).get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5 and result.counts[TrialState.COMPLETE] + result.counts[TrialState.PRUNED] == 5
    assert all(t.params["quantizer.beta"] not in FAULTS and "fail_reason" not in t.user_attrs for t in finished)
    failed = {FAULTS[t.params["quantizer.beta"]]: t for t in trials if t.state == TrialState.FAIL}
    assert sorted(failed) == sorted(FAULTS.values()) and len(trials) == 9  # nothing left RUNNING or WAITING
    reasons = {fault: trial.user_attrs["fail_reason"] for fault, trial in failed.items()}
    assert reasons["nan"].startswith("epoch 2: training loss became nan; lower optim.lr")
    assert reasons["inf"].startswith("epoch 2: training loss became inf; lower optim.lr")
    assert reasons["error"] == "RuntimeError: index 70 is out of bounds for dimension 0 with size 64"
    assert "index 70 is out of bounds" in failed["error"].user_attrs["traceback"]  # where it came from
    assert reasons["oom"].startswith("out of GPU memory: lower optim.batch_size (now 16)")
    assert "resources.trials_per_gpu" in reasons["oom"] and "Tried to allocate 2.00 GiB" in reasons["oom"]
    for trial in failed.values():  # what the trial did before its fault stays in the study
        assert list(trial.intermediate_values) == [1] and trial.user_attrs["epochs"] == 1
        assert trial.user_attrs["val_perplexity"] > 1
