"""One search trial inside a Ray worker: attach to its Optuna trial, train, report, end in its true state."""

from __future__ import annotations

import gc
import math
import os
import traceback
from pathlib import Path
from typing import Any, Mapping

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune

from vqtune.config import SearchSpace, TrainConfig
from vqtune.errors import VqtuneError
from vqtune.metrics import METRICS
from vqtune.study import artifact_store, build_pruner, open_storage
from vqtune.train import Reporter, fit
from vqtune.tune._artifacts import upload_trial_artifacts

# pruned_by: which rule stopped a trial
PRUNED_BY_PRUNER = "pruner"  # the study's pruner, on the objective
PRUNED_BY_PERPLEXITY = "perplexity"  # the codebook collapsed


class StudyReporter(Reporter):
    """Reports each epoch to the Optuna trial and to Ray, and decides pruning.

    Two rules prune: the study's pruner on the objective (``pruned_by = pruner``), and the perplexity
    rule, which stops a trial whose codebook collapsed (``pruned_by = perplexity``).
    """

    def __init__(self, trial: optuna.Trial, space: SearchSpace, config: TrainConfig):
        self.trial = trial
        self.space = space
        self.codebook_size = config.model.codebook_size
        self.epochs = config.total_epochs
        self.pruned_by: str | None = None
        self.pruned_epoch: int | None = None
        self.last: dict = {}

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        self.last = dict(metrics)
        value = float(metrics[self.space.objective.metric])
        self.trial.report(value, epoch)
        tune.report({**metrics, "objective": value, "optuna_trial": self.trial.number})
        rule = self.space.perplexity
        if rule.floor > 0 and epoch > rule.warmup_epochs and "val_perplexity" in metrics:  # stage 1 only
            if metrics["val_perplexity"] / self.codebook_size < rule.floor:
                self.pruned_by = PRUNED_BY_PERPLEXITY
        if self.pruned_by is None and epoch < self.epochs and self.trial.should_prune():
            self.pruned_by = PRUNED_BY_PRUNER
        if self.pruned_by:
            self.pruned_epoch = epoch
            return True
        return False


def run_trial(config: dict, *, space: SearchSpace, study_name: str) -> None:
    """The Ray trainable. ``config`` holds the Optuna ``trial_id`` and ``params`` chosen by the driver."""
    storage = _worker_storage(space.storage)
    # Workers report and tell; only the driver samples, so a plain sampler stands in for the file's one
    # (a grid sampler would try to stop the study from inside tell).
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=build_pruner(space),
                              sampler=optuna.samplers.RandomSampler())
    trial_id = config["trial_id"]
    trial = optuna.Trial(study, trial_id)
    if storage.get_trial(trial_id).state.is_finished():
        return  # told already (a restarted Ray trial whose Optuna trial was ended): nothing to redo

    device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    context = tune.get_context()
    for key, value in {
        "ray_trial_id": context.get_trial_id(),
        "device": device,
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "node": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
    }.items():
        trial.set_user_attr(key, value)

    reporter = train_config = result = None
    try:
        train_config = space.trial_config(config["params"]).model_copy(
            update={"device": device, "run_dir": Path(config["run_dir"])}
        )
        trial.set_user_attr("train_config", train_config.model_dump(mode="json"))  # what export hands back
        reporter = StudyReporter(trial, space, train_config)
        # Ray runs a trial again when its worker process died (FailureConfig): the Optuna trial is still
        # RUNNING with the epochs it reported, and its run directory holds the checkpoint of the last one.
        restarted = bool(storage.get_trial(trial_id).intermediate_values)
        if restarted:
            trial.set_user_attr("restarts", trial.user_attrs.get("restarts", 0) + 1)
        result = fit(train_config, reporter, resume=restarted)
    except Exception as exc:  # every failure ends the trial as FAIL with its reason; the search goes on
        trial.set_user_attr("fail_reason", _fail_reason(exc, train_config)[:2000])
        if not isinstance(exc, VqtuneError):
            trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        _final_attrs(trial, reporter.last if reporter else {},
                     epochs=len(storage.get_trial(trial_id).intermediate_values))
        study.tell(trial, state=TrialState.FAIL)
    if result is None:
        if device == "cuda":  # the failed run's tensors went with its traceback: give their memory back
            gc.collect()
            torch.cuda.empty_cache()
        return

    _final_attrs(trial, result.final, epochs=len(result.history))
    trial.set_user_attr("run_dir", str(result.run_dir))
    state = "PRUNED" if reporter.pruned_by else "COMPLETE"
    try:
        upload_trial_artifacts(trial, artifact_store(Path(config["artifact_dir"])), result.run_dir, result.final,
                               state)
    except OSError as exc:  # the trial's result stands without its pictures
        trial.set_user_attr("artifact_error", str(exc)[:500])
    if reporter.pruned_by:
        trial.set_user_attr("pruned_by", reporter.pruned_by)
        trial.set_user_attr("pruned_epoch", reporter.pruned_epoch)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, float(result.final[space.objective.metric]))


def _fail_reason(exc: Exception, config: TrainConfig | None) -> str:
    if isinstance(exc, VqtuneError):
        return str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError) and config is not None:
        key, size = ("prior.batch_size", config.prior.batch_size) if config.prior else (
            "optim.batch_size", config.optim.batch_size)
        return (f"out of GPU memory: lower {key} (now {size}) or the model's size, or give each trial a larger "
                f"share of a GPU (a lower resources.trials_per_gpu, or a higher resources.gpu). {exc}")
    return f"{type(exc).__name__}: {exc}"


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def _worker_storage(storage) -> optuna.storages.RDBStorage:
    """One storage, so one connection pool, per worker process and database. A worker runs trial after trial,
    and a storage opened per trial kept its connections until the garbage collector found it (measured on
    PostgreSQL: 36 connections after 30 trials)."""
    key = storage.model_dump_json()
    if key not in _STORAGES:
        _STORAGES[key] = open_storage(storage)
    return _STORAGES[key]


def _final_attrs(trial: optuna.Trial, metrics: Mapping[str, Any], epochs: int) -> None:
    """The last epoch's metrics as user attributes, under the trainer's own names (``epochs``: how many ran)."""
    trial.set_user_attr("epochs", epochs)
    for name, value in metrics.items():
        if name in METRICS and name != "epoch" and value is not None and math.isfinite(value):
            trial.set_user_attr(name, float(value))
