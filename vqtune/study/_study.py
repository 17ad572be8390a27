"""Create or load the study of a search, record what it searches, fail the trials of killed runs, and read
what a study holds (trials by state, the best trial)."""

from __future__ import annotations

import copy
import json
import logging
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import optuna
import sqlalchemy
from optuna.trial import TrialState

from vqtune import __version__
from vqtune.config import SearchSpace
from vqtune.errors import StudyError
from vqtune.study._attrs import FAIL_REASON_ATTR, RETRY_OF_ATTR, SPACE_ATTR, SPACE_FILE_ATTR, VERSION_ATTR
from vqtune.study._sampling import build_sampler, study_sampler
from vqtune.study.pruning import build_pruner
from vqtune.study._storage import check_storage, mask, requeue_once, requeue_outcome

log = logging.getLogger("vqtune.tune")

FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def check_search(space: SearchSpace) -> None:
    """Refuse what would fail once the search runs, before Ray starts or anything is written: a storage that
    cannot be reached, sampler or pruner options the Optuna classes do not take."""
    check_storage(space.storage)
    build_sampler(space)
    build_pruner(space)


def open_study(space: SearchSpace, storage: optuna.storages.BaseStorage, space_file: Optional[Path]) -> optuna.Study:
    """Create the study ``space.study`` or continue it; stale RUNNING trials of a killed run become FAIL.

    Each failed stale trial is enqueued again with the same parameters, once (``requeue_once``, the storage's
    stale-trial callback), so the next ``ask`` reruns it; trials of a live run keep their heartbeats fresh and
    are left alone.
    """
    directions = [goal.direction for goal in space.goals]
    study = optuna.create_study(
        study_name=space.study,
        storage=storage,
        sampler=study_sampler(space),
        pruner=build_pruner(space),
        directions=directions,
        load_if_exists=True,
    )
    created = [d.name.lower() for d in study.directions]
    if created != directions:
        raise StudyError(
            f"study {space.study!r} in {mask(space.storage.url)} was created to {' and '.join(created)}, "
            f"this search space asks to {' and '.join(directions)}; use another study name"
        )
    current = recordable(space)
    recorded = study.user_attrs.get(SPACE_ATTR)
    if recorded and goal_metrics(recorded) != goal_metrics(current):
        raise StudyError(
            f"study {space.study!r} optimizes {', '.join(goal_metrics(recorded))}, this search space "
            f"{', '.join(goal_metrics(current))}; use another study name"
        )
    if space.is_multi_objective:  # the dashboard names the axes of its front by them
        with warnings.catch_warnings():  # experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([goal.metric for goal in space.goals])
    study.set_user_attr(SPACE_ATTR, current)
    study.set_user_attr(SPACE_FILE_ATTR, str(space_file) if space_file else None)
    study.set_user_attr(VERSION_ATTR, __version__)
    stale = fail_stale_trials(study, space.storage.grace_period)
    if stale:
        log.warning("trials %s of a killed run had no heartbeat: marked FAIL, %s", stale, _queued_again(study, stale))
    return study


def fail_stale_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Fail the RUNNING trials whose run died, each with its reason, and queue each one's parameters again
    (the storage's stale-trial callback, :func:`requeue_once`, as Optuna's ``fail_stale_trials`` would). The
    reason ends with what became of the parameters: queued again, or why not (a retry is not retried).
    Returns their numbers.

    A trial is stale when its last heartbeat is over ``grace_period`` s old (Optuna's rule), or when it has no
    heartbeat at all and started over ``grace_period`` s ago: its driver died between ``ask`` and its first
    heartbeat (a fresh trial, or a retry taken from the queue). Optuna's rule skips such a trial, and a search
    would wait for it for ever.
    """
    storage = study._storage
    stale = {trial_id: f"its search stopped (no heartbeat for over {grace_period:g} s)"
             for trial_id in storage._get_stale_trial_ids(study._study_id)}
    for trial_id in _never_beat(study, grace_period):
        stale[trial_id] = (f"its search stopped before the trial's first heartbeat (started over {grace_period:g} s "
                           "ago)")
    requeue = storage.get_heartbeat_stale_trial_callback()
    numbers = []
    for trial_id, cause in stale.items():
        try:
            # what becomes of its parameters is said only when known: vqtune's callback says it before it acts
            said = requeue_outcome(study, storage.get_trial(trial_id))[1] if requeue is requeue_once else None
            storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, f"{cause}; {said}" if said else cause)
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # ended meanwhile, or failed by another run
            continue
        trial = copy.deepcopy(storage.get_trial(trial_id))
        numbers.append(trial.number)
        if requeue is not None:
            requeue(study, trial)
    return numbers


def _queued_again(study: optuna.Study, numbers: list[int]) -> str:
    """Which of the trials ``numbers`` have their parameters queued again, in words for a log line."""
    queued = {t.user_attrs.get(RETRY_OF_ATTR) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    again = [n for n in numbers if n in queued]
    if len(again) == len(numbers):
        return "their parameters queued again"
    if not again:
        return "their parameters not queued again (see their fail_reason)"
    return f"the parameters of {again} queued again, not those of {[n for n in numbers if n not in queued]} (see " \
           "their fail_reason)"


def live_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Numbers of the RUNNING trials of ``study`` that a live run is still working on: those that
    :func:`fail_stale_trials` would leave alone (a fresh heartbeat, or none yet and started under
    ``grace_period`` s ago)."""
    storage = study._storage
    running = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale = set(_never_beat(study, grace_period))
    # stale by the storage's own grace period, as Optuna judges (a storage without heartbeats has none)
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        stale.update(storage._get_stale_trial_ids(study._study_id))
    return [t.number for t in running if t._trial_id not in stale]


def _never_beat(study: optuna.Study, grace_period: float) -> list[int]:
    """Storage ids of the RUNNING trials of ``study`` that have no heartbeat and started over ``grace_period``
    s ago. A live driver records a trial's first heartbeat right after ``ask`` (some 40 ms)."""
    storage = getattr(study._storage, "_backend", study._storage)  # create_study wraps it in a cache
    if not isinstance(storage, optuna.storages.RDBStorage):
        return []
    running = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    # Optuna's storage API reads a heartbeat only inside its own stale-trial query, which skips the trials that
    # have none, so the heartbeat table (Optuna's schema) is read directly, after the trials: a trial asked in
    # between is too young to count.
    with storage.engine.connect() as connection:
        beating = set(connection.execute(
            sqlalchemy.text("SELECT h.trial_id FROM trial_heartbeats h JOIN trials t ON t.trial_id = h.trial_id "
                            "WHERE t.study_id = :study_id"),
            {"study_id": study._study_id},
        ).scalars())
    # Optuna stamps datetime_start with the local clock of the process that asked (naive datetime.now()).
    started_before = datetime.now() - timedelta(seconds=grace_period)
    return [t._trial_id for t in running
            if t._trial_id not in beating and t.datetime_start is not None and t.datetime_start < started_before]


def goal_metrics(recorded: dict) -> list[str]:
    """The objective metrics of a recorded search space (``objectives``, else ``objective``)."""
    goals = recorded.get("objectives") or [recorded["objective"]]
    return [goal["metric"] for goal in goals]


def recordable(space: SearchSpace) -> dict:
    """The resolved search space as JSON for the study's user attributes, the storage password masked."""
    data = json.loads(space.model_dump_json())
    data["storage"]["url"] = mask(space.storage.url)
    if space.is_multi_objective:
        del data["objective"]  # the unused default; the recorded space validates again as it was
    return data


def load_existing(storage: optuna.storages.BaseStorage, name: str, url: str) -> optuna.Study:
    """An existing study, or a StudyError that lists the studies there are."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StudyError(f"no study {name!r} in {mask(url)} (studies there: {known}); name one of them, or give "
                         "the --storage that holds it")
    return optuna.load_study(study_name=name, storage=storage)


def count_states(study: optuna.Study) -> dict[optuna.trial.TrialState, int]:
    counts = {state: 0 for state in optuna.trial.TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts


def best_trial(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    """The best feasible complete trial of a single-objective study (None: none yet, or a multi-objective one)."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no complete (feasible) trial yet
        return None


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The best trial of a single-objective study, or the Pareto-optimal feasible trials of a multi-objective
    one, by number."""
    if not len(study.directions) > 1:
        best = best_trial(study)
        return [best] if best is not None else []
    return sorted(study.best_trials, key=lambda t: t.number)
