"""``vqtune studies``: the studies of a storage as a table."""

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
