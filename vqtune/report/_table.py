"""The trials of a study as one flat pandas table: params and user attributes as plain columns."""

from __future__ import annotations

import math

import optuna
import pandas as pd

# Per-trial user attributes that are records, not figures: kept out of the table.
_BULKY = ("train_config", "traceback")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, start/complete times, duration, every param (named by its
    dotted config key), every user attribute (``pruned_by``, ``perplexity``, ...), and for stage-1 trials
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
