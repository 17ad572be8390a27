"""A live view of a search: trials by state, the best so far, the trials running (and those waiting for
resources) with their epoch. Every line reads label first, then value, and fits an 80-column terminal."""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState
from ray import tune
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vqtune.config import SearchSpace
from vqtune.study import best_trial, best_trials, count_states


class LiveView(tune.Callback):
    """A Ray Tune callback that redraws a rich table after every reported epoch and finished trial.

    A worker waits in its report until the driver has handled the result, so an epoch's result only updates
    the running trials' rows; the study itself (counts, best trial: a read of every trial) is read again when a
    trial ends, and at most once a second otherwise. Ray's own trial states tell a trial that runs from one
    that waits for a CPU or GPU: the study calls both RUNNING.
    """

    REREAD_S = 1.0

    def __init__(self, study: optuna.Study, space: SearchSpace, n_trials: int, live: Live):
        self.study = study
        self.space = space
        self.n_trials = n_trials
        self.live = live
        self.results: dict[str, dict] = {}  # Ray trial id -> its last reported epoch
        self.trials: list = []  # Ray's trials, as its last callback passed them
        self._header: list = []
        self._read_at = -float("inf")

    def __getstate__(self) -> dict:
        return {}  # Ray pickles callbacks with the experiment state; a live view is not state

    def on_trial_start(self, iteration, trials, trial, **info):
        self.trials = trials
        self.refresh(reread=True)

    def on_step_end(self, iteration, trials, **info):
        # trials Ray created but could not start yet (no free CPU or GPU) show up between other events
        self.trials = trials
        if time.monotonic() - self._read_at >= self.REREAD_S:
            self.refresh(reread=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.trials = trials
        self.results[trial.trial_id] = result
        self.refresh(reread=time.monotonic() - self._read_at >= self.REREAD_S)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.trials = trials
        self.results.pop(trial.trial_id, None)
        self.refresh(reread=True)

    on_trial_error = on_trial_complete

    def refresh(self, reread: bool = True) -> None:
        running, waiting = split_trials(self.trials, self.results)
        if reread or not self._header:
            self._header = header(self.study, self.space, self.n_trials, len(waiting))
            self._read_at = time.monotonic()
        self.live.update(Group(*self._header, *running_table(self.space, running, waiting)))


def split_trials(trials, results: dict[str, dict]) -> tuple[list[dict], list[int]]:
    """The rows of the trials Ray runs (the last result of each, or epoch 0 before its first) and the study
    numbers of those it has not started (PENDING: waiting for resources)."""
    running, waiting = [], []
    for trial in trials:
        number = trial.config.get("number") if isinstance(trial.config, dict) else None
        if trial.status == "PENDING":
            waiting.append(number if number is not None else "?")
        elif trial.status == "RUNNING":
            running.append(results.get(trial.trial_id) or {"optuna_trial": number if number is not None else "?"})
    return running, waiting


def render(study: optuna.Study, space: SearchSpace, n_trials: int, running=(), waiting=()) -> Group:
    return Group(*header(study, space, n_trials, len(waiting)), *running_table(space, running, waiting))


def header(study: optuna.Study, space: SearchSpace, n_trials: int, waiting: int = 0) -> list[Text]:
    """The study's line (trials by state) and the best trial so far, its parameters wrapped below it.

    ``waiting``: trials the study counts as RUNNING that Ray has not started (no free resources); enqueued
    trials (the study's WAITING: retries, trials queued by hand) show as ``queued``.
    """
    counts = count_states(study)
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    waiting = min(waiting, counts[TrialState.RUNNING])
    shown = {
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "fail": counts[TrialState.FAIL],
        "running": counts[TrialState.RUNNING] - waiting,
        "waiting": waiting,
        "queued": counts[TrialState.WAITING],
    }
    states = "  ".join(f"{name} {n}" for name, n in shown.items() if n or name in ("complete", "pruned"))
    lines = [Text.from_markup(f"[bold]study {study.study_name}[/]  finished {finished}/{n_trials}  ({states})")]
    if space.is_multi_objective:
        front = best_trials(study)
        if front:
            metrics = " / ".join(goal.metric for goal in space.goals)
            points = "  ".join(f"#{t.number} " + " / ".join(f"{v:.4g}" for v in t.values) for t in front[:6])
            more = f"  and {len(front) - 6} more" if len(front) > 6 else ""
            lines.append(Text(f"Pareto front ({metrics}): {points}{more}"))
        return lines
    best = best_trial(study)
    if best is not None:
        lines.append(Text.from_markup(f"best #{best.number}  {space.goals[0].metric} [bold]{best.value:.5g}[/]"))
        # one token per parameter: rich wraps between them, so on a narrow terminal none is cut off
        lines.append(Text("  " + "  ".join(f"{k}={_short(v)}" for k, v in best.params.items())))
    return lines


def running_table(space: SearchSpace, running=(), waiting=()) -> list[Table]:
    """One row per running trial, from its last reported epoch, and one per trial waiting for resources
    (none when nothing runs or waits)."""
    rows = sorted(running, key=lambda r: _number(r.get("optuna_trial")))
    if not rows and not waiting:
        return []
    metrics = [goal.metric for goal in space.goals]
    table = Table(box=None, pad_edge=False, header_style="dim")
    for column in ("trial", "epoch", *metrics, "perplexity", "active codes", "img/s"):
        table.add_column(column, justify="right", overflow="fold")
    for r in rows:
        table.add_row(
            f"#{r.get('optuna_trial', '?')}", f"{r.get('epoch', 0)}/{space.base.total_epochs}",
            *(f"{r[m]:.5g}" if m in r else "-" for m in metrics),
            f"{r['val_perplexity']:.1f}" if "val_perplexity" in r else "-",
            f"{r['val_active_codes']:.0f}" if "val_active_codes" in r else "-",
            f"{r['train_images_per_s']:.0f}" if "train_images_per_s" in r else "-",
        )
    for number in sorted(waiting, key=_number):
        table.add_row(f"#{number}", "waiting", *("" for _ in metrics), "", "", "")
    return [table]


def _number(value) -> float:
    return value if isinstance(value, (int, float)) else float("inf")


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
