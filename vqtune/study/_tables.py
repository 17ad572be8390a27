"""A study storage as pandas tables: its studies (``vqtune studies``) and a study's trials (``vqtune trials``,
the report, ``--csv`` / ``--parquet``)."""

from __future__ import annotations

import math

import optuna
import pandas as pd
from optuna.trial import TrialState

from vqtune.study._study import SPACE_ATTR

# Per-trial user attributes that are records, not figures: kept out of the table.
_BULKY = ("train_config", "traceback")

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
    """One row per study: trials by state, the best value and its direction."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)], dtype="object")
        counts = states.value_counts()
        rows.append({
            "study": summary.study_name,
            "direction": summary.direction.name.lower(),
            **{state.name.lower(): int(counts.get(state.name, 0))
               for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)},
            "best": summary.best_trial.value if summary.best_trial else None,
            "metric": (summary.user_attrs.get(SPACE_ATTR) or {}).get("objective", {}).get("metric"),
        })
    return pd.DataFrame(rows)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, start/complete times, duration, every param (named by its
    dotted config key), every user attribute (``pruned_by``, ``val_perplexity``, ...), and for stage-1 trials
    ``latent_cells`` and ``bits_per_image`` = latent cells x log2 K (the rate of the code grid)."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "datetime_start", "datetime_complete", "duration", "params",
               "user_attrs"),
        multi_index=False,
    )
    if frame.empty:
        return frame
    frame = frame.drop(columns=[f"user_attrs_{name}" for name in _BULKY if f"user_attrs_{name}" in frame])
    frame.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in frame.columns]
    for old, new in RENAMED.items():
        if old in frame and new not in frame:
            frame = frame.rename(columns={old: new})
    if "pruned_by" in frame:
        frame["pruned_by"] = frame["pruned_by"].replace(RENAMED_PRUNED_BY)
    rates = [_rate(t) for t in study.get_trials(deepcopy=False)]
    frame["latent_cells"] = [r[0] for r in rates]
    frame["bits_per_image"] = [r[1] for r in rates]
    return frame


def _rate(trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
    config = trial.user_attrs.get("train_config")
    if not config or config.get("prior"):
        return math.nan, math.nan
    resolution = config["data"]["resolution"]
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    cells = (height >> config["model"]["downsample"]) * (width >> config["model"]["downsample"])
    return float(cells), cells * math.log2(config["model"]["codebook_size"])
