"""A study storage as pandas tables: its studies (``vqtune studies``) and a study's trials (``vqtune trials``,
the report, ``--csv`` / ``--parquet``)."""

from __future__ import annotations

import math
from typing import Optional

import optuna
import pandas as pd
from pydantic import ValidationError
from optuna.trial import TrialState

from vqtune.config import TrainConfig
from vqtune.metrics import prior_warning
from vqtune.study._attrs import BULKY_ATTRS, PRIOR_WARNING_ATTR, PRUNED_BY_ATTR, SPACE_ATTR, TRAIN_CONFIG_ATTR
from vqtune.study._study import best_trials, goal_metrics

# Names of trial attributes before vqtune 0.2 took the trainer's metric keys verbatim: a study searched before
# shows its trials under today's names.
RENAMED = {
    "perplexity": "val_perplexity",
    "usage_fraction": "val_usage",
    "psnr": "val_psnr",
    "normalized_mse": "val_nmse",
    "images_per_s": "train_images_per_s",
    "nll": "val_nll",
    "bits_per_dim": "val_bits_per_dim",
}
RENAMED_PRUNED_BY = {"recon_loss": "pruner"}


def studies_table(storage: optuna.storages.BaseStorage) -> pd.DataFrame:
    """One row per study: trials by state, its objectives and directions, and the best value (a single-objective
    study) or the number of Pareto-optimal trials (a multi-objective one)."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)], dtype="object")
        counts = states.value_counts()
        recorded = summary.user_attrs.get(SPACE_ATTR)
        best = best_trials(study)
        multi = len(summary.directions) > 1
        rows.append({
            "study": summary.study_name,
            "direction": ", ".join(d.name.lower() for d in summary.directions),
            **{state.name.lower(): int(counts.get(state.name, 0))
               for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)},
            "best": None if multi or not best else best[0].value,
            "pareto": len(best) if multi else None,
            "metric": _goals(recorded),
        })
    return pd.DataFrame(rows)


def _goals(recorded) -> Optional[str]:
    """The objective metrics a study's search recorded, or None: none recorded, or none readable (one study's odd
    record never keeps a storage's other studies from being listed)."""
    try:
        return ", ".join(map(str, goal_metrics(recorded))) if recorded else None
    except (AttributeError, KeyError, TypeError):
        return None


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value (``values_0``, ``values_1``, ... in a multi-objective study),
    start/complete times, duration, every param (named by its dotted config key), every user attribute
    (``pruned_by``, ``val_perplexity``, ...), ``feasible`` when the search has constraints, ``pareto`` (a
    Pareto-optimal trial of a multi-objective study), ``prior_warning`` when a trial's trained prior does worse
    than the unigram prior (the line the trial recorded, else read from its final metrics, so a study recorded
    before the attribute shows it too), and for trials that train stage 1 ``quantizer_kind``, ``codebook_size``
    (K), ``latent_cells`` and ``bits_per_image`` = latent cells x log2 K (the rate of the code grid)."""
    multi = len(study.directions) > 1
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "datetime_start", "datetime_complete", "duration", "params",
               "user_attrs", "system_attrs"),
        multi_index=False,
    )
    if frame.empty:
        return frame
    system = [c for c in frame.columns if c.startswith("system_attrs_")]
    frame = frame.drop(columns=system + [f"user_attrs_{name}" for name in BULKY_ATTRS if f"user_attrs_{name}" in frame])
    frame.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in frame.columns]
    for old, new in RENAMED.items():
        if old in frame and new not in frame:
            frame = frame.rename(columns={old: new})
    if PRUNED_BY_ATTR in frame:
        frame[PRUNED_BY_ATTR] = frame[PRUNED_BY_ATTR].replace(RENAMED_PRUNED_BY)
    trials = study.get_trials(deepcopy=False)
    if any(t.constraints for t in trials):
        frame["feasible"] = [all(v <= 0 for v in t.constraints.values()) if t.constraints else None for t in trials]
    if multi:
        front = {t.number for t in best_trials(study)}
        frame["pareto"] = [t.number in front for t in trials]
    warnings = [t.user_attrs.get(PRIOR_WARNING_ATTR) or prior_warning(t.user_attrs) for t in trials]
    if any(warnings):
        frame[PRIOR_WARNING_ATTR] = warnings
    rates = [_rate(t) for t in trials]
    frame["quantizer_kind"] = [r[0] for r in rates]
    frame["codebook_size"] = [r[1] for r in rates]
    frame["latent_cells"] = [r[2] for r in rates]
    frame["bits_per_image"] = [r[3] for r in rates]
    return frame


def _rate(trial: optuna.trial.FrozenTrial) -> tuple[object, float, float, float]:
    """The trial's quantizer kind, K, latent cells (of every level) and bits per image (NaN where it trains no
    stage 1, or its recorded config no longer validates)."""
    recorded = trial.user_attrs.get(TRAIN_CONFIG_ATTR)
    try:
        config = TrainConfig.model_validate(recorded) if recorded else None
    except ValidationError:
        config = None
    if config is None or "vqvae" not in config.stages:
        return None, math.nan, math.nan, math.nan
    cells = sum(h * w for h, w in config.grids)
    return config.quantizer.kind, float(config.codebook_size), float(cells), cells * math.log2(config.codebook_size)
