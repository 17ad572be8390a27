"""One search trial inside a Ray worker: attach to its Optuna trial, train, report, end in its true state."""

from __future__ import annotations

import gc
import math
import os
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, TypedDict

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune

from vqtune.config import SearchSpace, TrainConfig
from vqtune.errors import VqtuneError
from vqtune.metrics import METRICS, prior_warning
from vqtune import run_dir as rd
from vqtune.study import (ARTIFACT_ERROR_ATTR, BOUNDS_ATTR, EPOCHS_ATTR, FAIL_REASON_ATTR, PRIOR_WARNING_ATTR,
                          PRUNED_BY_ATTR, PRUNED_EPOCH_ATTR, RESTARTS_ATTR, RUN_DIR_ATTR, SERIES_ATTR, TRACEBACK_ATTR,
                          TRAIN_CONFIG_ATTR, VECTORS_ATTR, WORKER_ATTRS, ArtifactStore, artifact_store, build_pruner,
                          codebook_collapsed, objective_bounds, open_storage, pruning_rule, rule_prunes, stage_key,
                          violation_of)
from vqtune.train import Reporter, RunInfo, fit, sample_images
from vqtune.tune._artifacts import curves_image, upload_trial_artifacts

# pruned_by: which rule stopped a trial
PRUNED_BY_PRUNER = "pruner"  # the study's pruner, on the objective
PRUNED_BY_PERPLEXITY = "perplexity"  # the codebook collapsed
SAMPLES = 64  # prior samples a trial that trains a prior draws, timed, for its artifacts and sample_seconds


class TrialConfig(TypedDict):
    """What the driver hands each Ray trial (Ray's trial ``config``, a plain dict): which Optuna trial to run,
    with the parameters the study drew for it, and where to write."""

    trial_id: int  # the Optuna trial's storage id
    number: int  # its number in the study
    params: dict[str, Any]  # the parameters by config key (``SearchSpace.trial_config`` builds the config)
    run_dir: str  # its run directory (a restarted trial resumes in the one it recorded instead)
    artifact_dir: str  # the artifact store its pictures are uploaded to


class StudyReporter(Reporter):
    """Reports each epoch to the Optuna trial and to Ray, and decides pruning.

    Two rules prune: the study's pruner on the objective (``pruned_by = pruner``), and the perplexity rule,
    which stops a trial whose codebook collapsed (``pruned_by = perplexity``); neither at the trial's last epoch.
    The study's pruner is Optuna's for a one-stage, one-objective search; otherwise vqtune's
    (:func:`~vqtune.study.pruning_rule`) on what each epoch records in the user attribute ``objective_bounds``:
    per stage epoch, each objective's interval (a two-stage trial's stage-1 ``val_bits_per_dim`` spans its
    distortion term to its unigram bound) and constraint violation, compared only with other trials at the same
    stage epoch (:class:`~vqtune.study.BoundsRule`, :class:`~vqtune.study.ParetoRule`). A multi-objective trial
    also keeps its objectives per epoch as ``objective_vectors`` (Optuna refuses ``report`` there). An epoch that
    does not report every objective (stage 1 of a search judged by ``val_nll``) is not judged.
    """

    def __init__(self, trial: optuna.Trial, study: optuna.Study, space: SearchSpace, config: TrainConfig,
                 stored: optuna.trial.FrozenTrial, store: ArtifactStore | None = None):
        self.trial = trial
        self.study = study
        self.space = space
        self.codebook_size = config.codebook_size
        self.epochs = config.total_epochs
        self.signs = [1.0 if goal.direction == "minimize" else -1.0 for goal in space.goals]
        self.rule = pruning_rule(space)
        self.stages = config.stages
        self.stage1_epochs = config.optim.epochs if "vqvae" in config.stages else 0
        self.stage = config.stages[0]  # the stage now training (on_start)
        # A restarted trial keeps what its first attempt reported: the resumed run reports its last epoch again.
        # (``stored``: the trial as the study held it when this attempt began)
        self.vectors: dict[str, list[float]] = dict(stored.user_attrs.get(VECTORS_ATTR, {}))
        self.bounds: dict[str, dict] = dict(stored.user_attrs.get(BOUNDS_ATTR, {}))
        self.reported_epochs = set(stored.intermediate_values)
        self.series: dict[str, list] = dict(stored.user_attrs.get(SERIES_ATTR, {}))
        self.rows = {e: {name: values[i] for name, values in self.series.items() if name != "epoch"}
                     for i, e in enumerate(self.series.get("epoch", []))}
        self.store = store
        self.run_dir: Path | None = None
        self.pruned_by: str | None = None
        self.pruned_epoch: int | None = None
        self.final: dict = {}  # every stage's last metrics, the last stage's winning where both report a key
        self.reported = 0

    def on_start(self, info: RunInfo) -> None:
        # Where the run is written, before any epoch: a worker that dies now is resumed there by its restart.
        self.run_dir = Path(info.run_dir)
        self.stage = info.stage
        if self.trial.user_attrs.get(RUN_DIR_ATTR) != str(info.run_dir):
            self.trial.set_user_attr(RUN_DIR_ATTR, str(info.run_dir))

    def report(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        self.final.update(metrics)
        self.reported += 1
        self._record(epoch, metrics)
        if self.wants_snapshot(epoch) and epoch not in self.reported_epochs:  # not again on a resumed run
            self._upload_snapshot(epoch)
        values = [metrics.get(goal.metric) for goal in self.space.goals]
        judged = all(v is not None for v in values)
        extra = {"objective": float(values[0])} if judged and len(values) == 1 else {}
        tune.report({**metrics, **extra, "optuna_trial": self.trial.number})
        if codebook_collapsed(self.space.perplexity, epoch, self.epochs, metrics, self.codebook_size):
            self.pruned_by = PRUNED_BY_PERPLEXITY
        if judged and self._prune(epoch, metrics, [float(v) for v in values]) and self.pruned_by is None:
            self.pruned_by = PRUNED_BY_PRUNER
        if self.pruned_by:
            self.pruned_epoch = epoch
            return True
        return False

    def wants_snapshot(self, epoch: int) -> bool:
        """Every ``snapshot_every`` epochs, but the last (its pictures are the trial's final artifacts)."""
        every = self.space.snapshot_every
        return self.store is not None and every > 0 and epoch % every == 0 and epoch < self.epochs

    def _record(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Add the epoch to the series attribute (replacing it when a resumed run reports it again)."""
        self.rows[epoch] = {name: float(f"{value:.6g}") if value is not None and math.isfinite(value) else None
                            for name, value in metrics.items() if name in METRICS and name != "epoch"}
        epochs = sorted(self.rows)
        names = sorted({name for row in self.rows.values() for name in row})
        self.series = {"epoch": epochs, **{name: [self.rows[e].get(name) for e in epochs] for name in names}}
        self.trial.set_user_attr(SERIES_ATTR, self.series)

    def write_curves(self, path: Path) -> None:
        curves_image(self.series, first=self.space.goals[0].metric).save(path)

    def _upload_snapshot(self, epoch: int) -> None:
        """The epoch's curves and (stage 1) reconstructions, uploaded while the trial runs; a failure to write
        them costs the pictures, never the trial."""
        if self.run_dir is None:
            return
        curves = self.run_dir / rd.epoch_file(rd.CURVES, epoch)
        files = [curves, self.run_dir / rd.epoch_file(rd.RECONSTRUCTIONS, epoch)]
        try:
            self.write_curves(curves)
            for path in files:
                if path.exists():
                    self.store.upload(self.trial, path)
        except OSError as exc:
            self.trial.set_user_attr(ARTIFACT_ERROR_ATTR, str(exc)[:500])

    def _prune(self, epoch: int, metrics: Mapping[str, float], values: list[float]) -> bool:
        """Record the epoch and ask whether the study's rule prunes (never at the trial's last epoch)."""
        key = stage_key(self.stage, epoch, self.stage1_epochs)
        if self.rule is not None:  # what vqtune's rules compare (Optuna's pruners read the intermediate values)
            prior_to_come = self.stage == "vqvae" and "prior" in self.stages
            goals = [(goal.metric, sign) for goal, sign in zip(self.space.goals, self.signs)]
            self.bounds[key] = objective_bounds(metrics, goals, self.space.constraints, prior_to_come).to_json()
            self.trial.set_user_attr(BOUNDS_ATTR, self.bounds)
        if len(values) == 1:
            if epoch not in self.reported_epochs:
                self.trial.report(values[0], epoch)
        else:
            self.vectors[str(epoch)] = values
            self.trial.set_user_attr(VECTORS_ATTR, self.vectors)
        if epoch >= self.epochs:
            return False
        if self.rule is None:
            return len(values) == 1 and self.trial.should_prune()
        return rule_prunes(self.rule, self.study, self.trial.number, self.bounds, key, epoch, self.signs)


def run_trial(config: TrialConfig, *, space: SearchSpace, study_name: str) -> None:
    """The Ray trainable. ``config`` names the Optuna trial and holds the ``params`` the driver chose."""
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
    worker = (context.get_trial_id(), device, [str(g) for g in ray.get_gpu_ids()], ray.util.get_node_ip_address(),
              ray.get_runtime_context().get_node_id(), os.getpid())
    for key, value in zip(WORKER_ATTRS, worker, strict=True):
        trial.set_user_attr(key, value)

    reporter = train_config = result = None
    try:
        train_config = space.trial_config(config["params"]).model_copy(
            update={"device": device, "run_dir": Path(config["run_dir"])}
        )
        trial.set_user_attr(TRAIN_CONFIG_ATTR, train_config.model_dump(mode="json"))  # what export hands back
        stored = storage.get_trial(trial_id)
        store = artifact_store(Path(config["artifact_dir"]))
        reporter = StudyReporter(trial, study, space, train_config, stored, store)
        # Ray runs a trial again when its worker process died (FailureConfig): the Optuna trial is still
        # RUNNING, and the run directory its first attempt recorded holds the checkpoint of its last epoch.
        previous = stored.user_attrs.get(RUN_DIR_ATTR)
        if previous is not None:
            trial.set_user_attr(RESTARTS_ATTR, trial.user_attrs.get(RESTARTS_ATTR, 0) + 1)
            train_config = train_config.model_copy(update={"run_dir": Path(previous)})
        result = fit(train_config, reporter, resume=previous is not None)
    except Exception as exc:  # every failure ends the trial as FAIL with its reason; the search goes on
        trial.set_user_attr(FAIL_REASON_ATTR, _fail_reason(exc, train_config)[:2000])
        if not isinstance(exc, VqtuneError):
            trial.set_user_attr(TRACEBACK_ATTR, traceback.format_exc()[-4000:])
        _final_attrs(trial, reporter.final if reporter else {}, epochs=reporter.reported if reporter else 0)
        study.tell(trial, state=TrialState.FAIL)
    if result is None:
        if device == "cuda":  # the failed run's tensors went with its traceback: give their memory back
            gc.collect()
            torch.cuda.empty_cache()
        return

    final = dict(result.final)  # the figures of the model that was used (stage 1's: the checkpoint stage 2 encoded)
    pruned = reporter.pruned_by is not None
    if "prior" in train_config.stages and not pruned:
        final["sample_seconds"] = _draw_samples(result.run_dir, device)
    _final_attrs(trial, final, epochs=len(result.history))
    warning = prior_warning(final)
    if warning:  # shown with the trial's attributes in the dashboard, the trials table and the report
        trial.set_user_attr(PRIOR_WARNING_ATTR, warning)
    for constraint in space.constraints:
        if final.get(constraint.metric) is not None:  # a value that is not finite violates it
            trial.set_constraint(str(constraint), violation_of(constraint, float(final[constraint.metric])))
    try:
        reporter.write_curves(result.run_dir / rd.CURVES)
        stages = dict(result.final_stages)
        if "sample_seconds" in final:  # measured by the trial itself, after training
            stages["trial"] = {"metrics": ["sample_seconds"]}
        upload_trial_artifacts(trial, store, result.run_dir, final, "PRUNED" if pruned else "COMPLETE", stages)
    except OSError as exc:  # the trial's result stands without its pictures
        trial.set_user_attr(ARTIFACT_ERROR_ATTR, str(exc)[:500])
    if pruned:
        trial.set_user_attr(PRUNED_BY_ATTR, reporter.pruned_by)
        trial.set_user_attr(PRUNED_EPOCH_ATTR, reporter.pruned_epoch)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, [float(final[goal.metric]) for goal in space.goals])


def _draw_samples(run_dir: Path, device: str) -> float:
    """Draw and decode ``SAMPLES`` prior samples into the run directory's samples.png; returns the seconds."""
    start = time.perf_counter()
    grid = sample_images(run_dir, n=SAMPLES, device=device)
    seconds = time.perf_counter() - start
    grid.save(Path(run_dir) / rd.SAMPLES)
    return seconds


def _fail_reason(exc: Exception, config: TrainConfig | None) -> str:
    if isinstance(exc, VqtuneError):
        return str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError) and config is not None:
        batches = {"vqvae": ("optim.batch_size", config.optim.batch_size),
                   "prior": ("prior.batch_size", config.prior.batch_size if config.prior else None)}
        lower = " or ".join(f"{key} (now {size})" for key, size in (batches[stage] for stage in config.stages))
        return (f"out of GPU memory: lower {lower} or the model's size, or give each trial a larger "
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
    """The trial's final metrics as user attributes, under the trainer's own names (``epochs``: how many ran)."""
    trial.set_user_attr(EPOCHS_ATTR, epochs)
    for name, value in metrics.items():
        if name in METRICS and name != "epoch" and value is not None and math.isfinite(value):
            trial.set_user_attr(name, float(value))
