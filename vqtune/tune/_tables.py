"""``vqtune studies`` and ``vqtune trials``: the studies of a storage and the trials of a study, as tables."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import TrialState


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
            "metric": (summary.user_attrs.get("search_space") or {}).get("objective", {}).get("metric"),
        })
    return pd.DataFrame(rows)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, params, pruned_by, epochs (and the failure reason)."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"), multi_index=False)
    if frame.empty:
        return frame
    frame.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in frame.columns]
    params = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    columns = ["number", "state", "value", *params, "pruned_by", "epochs", "perplexity", "fail_reason"]
    return frame.reindex(columns=[c for c in columns if c in frame.columns])
