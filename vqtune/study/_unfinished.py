"""Parameters a study drew that no trial finished: a failed trial whose parameters were not queued again (a retry
that died too is not retried), one queued and still waiting, one still running (``vqtune trials --unfinished``)."""

from __future__ import annotations

import optuna
import pandas as pd
from optuna.trial import TrialState

from vqtune.study._attrs import FAIL_REASON_ATTR
from vqtune.study._study import FINISHED_STATES


def unfinished_params(study: optuna.Study) -> pd.DataFrame:
    """One row per parameter set that a trial of ``study`` drew (or was queued with) and that no COMPLETE or PRUNED
    trial has run: a column per parameter (its dotted config key), ``trials`` (the numbers of the trials that held
    it, in order), ``state`` (that of the last of them: FAIL, RUNNING or WAITING), ``queued`` (a waiting trial
    holds it, so the next run of the search trains it) and ``fail_reason`` (the last failed one's, first line).
    Empty when every parameter set drawn was finished."""
    trials = study.get_trials(deepcopy=False)
    finished = {_key(t.params) for t in trials if t.state in FINISHED_STATES}
    held: dict[tuple, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        if trial.state in FINISHED_STATES:
            continue
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        if params and _key(params) not in finished:
            held.setdefault(_key(params), []).append(trial)
    rows = []
    for key, holders in held.items():
        failed = [t for t in holders if t.state == TrialState.FAIL]
        reason = failed[-1].user_attrs.get(FAIL_REASON_ATTR) if failed else None
        rows.append({
            **dict(key),
            "trials": [t.number for t in holders],
            "state": holders[-1].state.name,
            "queued": any(t.state == TrialState.WAITING for t in holders),
            FAIL_REASON_ATTR: str(reason).strip().splitlines()[0] if reason and str(reason).strip() else None,
        })
    return pd.DataFrame(rows)


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))
