"""``vqtune export``: a trial of a study (the best by default) as a ``vqtune train`` config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import optuna
from optuna.trial import TrialState

from vqtune.config import PARAM_TYPES, SearchSpace, TrainConfig, describe, validate
from vqtune.errors import StudyError
from vqtune.study._attrs import SPACE_ATTR, TRAIN_CONFIG_ATTR
from vqtune.study._study import best_trials, goal_metrics


def trial_train_config(
    study: optuna.Study, number: Optional[int] = None
) -> tuple[TrainConfig, optuna.trial.FrozenTrial]:
    """The search's base config with the parameters of trial ``number`` (default: the best complete trial)."""
    recorded = study.user_attrs.get(SPACE_ATTR)
    if recorded is None:
        raise StudyError(f"study {study.study_name!r} was not made by vqtune run (no recorded search space); "
                         "export a study that vqtune run searched (see vqtune studies)")
    space = validate(SearchSpace, recorded, f"study {study.study_name} (recorded search space)", tags=PARAM_TYPES)
    if number is None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise StudyError(
                f"study {study.study_name!r} has no complete trial yet; run the search further or pick one with --trial"
            )
        best = best_trials(study)
        if len(study.directions) > 1:
            front = ", ".join(str(t.number) for t in best) or "none yet"
            raise StudyError(f"study {study.study_name!r} has several objectives and no single best trial; choose "
                             f"one of its Pareto-optimal trials ({front}) with --trial N (see vqtune trials)")
        if not best:
            raise StudyError(f"study {study.study_name!r} has no complete trial within its constraints; pick one "
                             "with --trial N (see vqtune trials)")
        trial = best[0]
    else:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if number not in trials:
            held = f"trials 0..{max(trials)}" if trials else "it has no trials yet"
            raise StudyError(f"study {study.study_name!r} has no trial {number} ({held})")
        trial = trials[number]
    # The config the trial itself trained with, when it recorded one: the search space may have been
    # edited since. Device and run directory are for the machine that trains it next.
    recorded_config = trial.user_attrs.get(TRAIN_CONFIG_ATTR)
    if recorded_config is not None:
        config = validate(TrainConfig, recorded_config, f"study {study.study_name}, trial {trial.number}")
    else:
        config = space.trial_config(trial.params)
    config = config.model_copy(
        update={"device": "auto", "run_dir": Path("runs") / f"{study.study_name}-trial-{trial.number}"}
    )
    return config, trial


def export_config(study: optuna.Study, path: Path, number: Optional[int] = None) -> optuna.trial.FrozenTrial:
    """Write the trial's training config to ``path`` as commented YAML; returns the trial."""
    config, trial = trial_train_config(study, number)
    metrics = goal_metrics(study.user_attrs[SPACE_ATTR])
    values = trial.values or []
    value = "".join(f", {metric} = {v:.6g}" for metric, v in zip(metrics, values))
    header = f"# vqtune train config: study {study.study_name!r}, trial {trial.number} ({trial.state.name}{value})\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + describe(config))
    return trial
