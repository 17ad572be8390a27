"""The Ray Tune searcher that asks the Optuna study for every trial: the study is the single source of truth.

Ray's own ``OptunaSearch`` records scheduler-stopped trials as COMPLETE and cannot prune; here Ray only runs
what the study asks for, each worker reports to its Optuna trial and tells its true end state, and the
driver keeps heartbeats of the trials in flight so that another run can tell a live search from a dead one.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from vqtune.config import SearchSpace
from vqtune.study import (FAIL_REASON_ATTR, FINISHED_STATES, RETRY_OF_ATTR, count_states, fail_stale_trials,
                          grid_points, suggest)
from vqtune.tune._trial import TrialConfig

log = logging.getLogger("vqtune.tune")


class StudySearcher(Searcher):
    """Asks ``study`` for trials until ``n_trials`` of them have finished (COMPLETE or PRUNED).

    Trials that FAIL do not count and are replaced, up to ``max_failures`` in this run (a guard against a
    config that fails every time).
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, space: SearchSpace,
                 n_trials: int, trial_root: Path, artifact_dir: Path, max_failures: Optional[int] = None):
        super().__init__()  # no metric for Ray: the study judges trials, and a failed trial reports nothing
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.space = space
        if space.sampler.type == "grid":  # one trial per distinct point: no point is run twice
            n_trials = min(n_trials, len(grid_points(space)))
        self.n_trials = n_trials
        self.trial_root = trial_root
        self.artifact_dir = artifact_dir
        self.max_failures = max_failures if max_failures is not None else max(3, n_trials)
        self.failures = 0
        self._quiet_until = 0.0
        self.in_flight: dict[str, int] = {}  # Ray trial id -> Optuna trial id
        self.numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="vqtune-heartbeat", daemon=True)
        self._heartbeat.start()

    def suggest(self, trial_id: str) -> Optional[TrialConfig]:
        # Ray asks again at every turn of its loop while we answer "not now"; spare the database.
        if time.monotonic() < self._quiet_until:
            return None
        counts = count_states(self.study)
        finished = sum(counts[s] for s in FINISHED_STATES)
        if finished >= self.n_trials or self.failures >= self.max_failures:
            if self.failures >= self.max_failures:
                log.warning("stopping: %d trials failed in this run (see `vqtune trials`)", self.failures)
            return Searcher.FINISHED if not self.in_flight else None
        # RUNNING trials of this run and of any other live run of the study may still finish.
        if finished + counts[TrialState.RUNNING] >= self.n_trials:
            self._quiet_until = time.monotonic() + 1.0
            return None  # ask again later: one in flight may fail and need replacing
        with warnings.catch_warnings():  # vqtune asks and tells, and keeps the heartbeats itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = self.study.ask()  # enqueued (WAITING) trials first: retries of trials of a killed run
        optuna_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self.storage.record_heartbeat(optuna_id)
        params = suggest(trial, self.space)
        with self._lock:
            self.in_flight[trial_id] = optuna_id
            self.numbers[trial_id] = trial.number
        return TrialConfig(trial_id=optuna_id, number=trial.number, params=params,
                           run_dir=str(self.trial_root / f"trial-{trial.number:04d}"),
                           artifact_dir=str(self.artifact_dir))

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        with self._lock:
            optuna_id = self.in_flight.pop(trial_id, None)
            number = self.numbers.pop(trial_id, None)
        if optuna_id is None:
            return
        frozen = self.storage.get_trial(optuna_id)
        if frozen.state == TrialState.RUNNING:
            # The worker ended without telling (its process died, or Ray gave up on it).
            reason = "the trial's worker process died" if error else "the trial ended without a result"
            # Ray ran it again (resources.max_restarts); vqtune does not queue it once more
            reason += (f"; its parameters were not queued again (vqtune trials --study {self.study.study_name} "
                       "--unfinished lists parameters no trial finished)")
            self.storage.set_trial_user_attr(optuna_id, FAIL_REASON_ATTR, reason)
            self.study.tell(number, state=TrialState.FAIL)
            frozen = self.storage.get_trial(optuna_id)
        if frozen.state == TrialState.FAIL:
            self.failures += 1

    def __getstate__(self) -> dict:
        # Ray pickles the searcher with the experiment state; the study, not this copy, is what a
        # later run resumes from, so the live connections and the heartbeat thread stay behind, and so does
        # the search space, whose storage URL may hold a password.
        skip = {"study", "storage", "space", "_lock", "_stop", "_heartbeat"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def close(self) -> None:
        """Stop the heartbeats; trials still in flight (an interrupted search) become FAIL and are queued again."""
        self._stop.set()
        self._heartbeat.join(timeout=5)
        with self._lock:
            left = list(self.in_flight.values())
            self.in_flight.clear()
        for optuna_id in left:
            frozen = self.storage.get_trial(optuna_id)
            if frozen.state != TrialState.RUNNING:
                continue
            # Queued before it is failed: a driver that dies in between leaves the trial RUNNING, to be failed
            # as stale by the next run, which finds its retry queued (requeue_once); the other order could
            # leave it FAIL with its parameters queued nowhere.
            try:
                self.storage.set_trial_user_attr(optuna_id, FAIL_REASON_ATTR, "the search was interrupted")
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its worker told it meanwhile
            self.study.enqueue_trial(frozen.params, user_attrs={RETRY_OF_ATTR: frozen.number})
            try:
                told = self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:
                told = self.storage.get_trial(optuna_id)
            if told.state != TrialState.FAIL:  # its worker told it meanwhile: the retry would run it twice
                self._withdraw_retry_of(frozen.number)

    def _withdraw_retry_of(self, number: int) -> None:
        for waiting in self.storage.get_all_trials(self.study_id, states=(TrialState.WAITING,)):
            if waiting.user_attrs.get(RETRY_OF_ATTR) == number:
                self.storage.set_trial_user_attr(waiting._trial_id, FAIL_REASON_ATTR,
                                                 f"not needed: trial {number} finished after all")
                self.storage.set_trial_state_values(waiting._trial_id, TrialState.FAIL)

    def _beat(self) -> None:
        """Beat for this run's trials; fail (and so requeue) trials of other runs that stopped beating."""
        interval = self.space.storage.heartbeat_interval
        while not self._stop.wait(interval):
            with self._lock:
                ids = list(self.in_flight.values())
            try:
                for optuna_id in ids:
                    self.storage.record_heartbeat(optuna_id)
                fail_stale_trials(self.study, self.space.storage.grace_period)
            except Exception as exc:  # a missed beat is harmless; a dead storage shows up elsewhere
                log.debug("heartbeat failed: %s", exc)
